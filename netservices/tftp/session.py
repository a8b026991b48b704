"""The sending side of one TFTP read, as a state machine without I/O (the clock is passed in).

    options = negotiate(request.options, size, limits)      # RFC 2347-2349, 7440
    transfer = Transfer(blocks, options, limits, now)
    send(transfer.start(now))
    ... send(transfer.on_ack(block, now))                     # each ACK from the client
    ... send(transfer.on_timeout(now)) when now >= transfer.deadline
    until transfer.done (transfer.failed: given up after `limits.retries`)

`blocks` gives the DATA packets: `blocks.packets(first, end)` for blocks first … end-1,
up to the first short one, `blocks.size`, and `blocks.ahead(keep, end)` to cut packets
before they are asked for (blocks.FileBlocks). `transfer.prepare()`, called once the
packets are sent, has the next window cut while the client works on this one, so that
the ACK that asks for it is answered without cutting anything.

Blocks are numbered from 1 without limit inside; on the wire they roll over at 2**16
(RFC 1350 leaves it open; tftpd-hpa and iPXE roll over to 0). The window (RFC 7440) is
go-back-N: an ACK for block n asks for n+1 … n+windowsize next; an ACK that moves
nothing forward (a duplicate, an old one) is ignored, so one ACK never makes two
answers — no Sorcerer's Apprentice (RFC 1123 4.2.3.1). Only a timeout retransmits, and
each one doubles the wait (up to `max_timeout`).
"""

from dataclasses import dataclass, field

from netservices.tftp import wire

MIN_BLKSIZE, MAX_BLKSIZE = 8, 65464  # RFC 2348
DEFAULT_BLKSIZE = 512


@dataclass(frozen=True)
class Limits:
    """What the server grants at most, and how it retransmits."""

    max_blksize: int = 1468
    max_windowsize: int = 64
    timeout: float = 1.0
    max_timeout: float = 8.0
    retries: int = 6


@dataclass(frozen=True)
class Options:
    """The negotiated transfer; `oack` holds what to acknowledge (empty: send no OACK)."""

    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float = 1.0
    oack: dict[str, str] = field(default_factory=dict)


def _number(value: str, low: int, high: int | None = None) -> int | None:
    """An option's decimal value, or None when it is not one (the option is then ignored)."""
    if not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    if number < low or (high is not None and number > high):
        return None
    return number


def negotiate(requested: dict[str, str], size: int | None, limits: Limits) -> Options:
    """Grant what the client asked for within `limits`; unknown or invalid options are
    left out of the OACK (RFC 2347: the server omits what it does not accept)."""
    oack: dict[str, str] = {}
    blksize, windowsize, timeout = DEFAULT_BLKSIZE, 1, limits.timeout
    # RFC 2348: a server may grant less than asked, never more than 65464.
    asked = _number(requested.get("blksize", ""), MIN_BLKSIZE)
    if asked is not None:
        blksize = min(asked, MAX_BLKSIZE, limits.max_blksize)
        oack["blksize"] = str(blksize)
    # RFC 2349: tsize 0 in an RRQ asks for the size; unknown size: leave it out.
    if _number(requested.get("tsize", ""), 0) is not None and size is not None:
        oack["tsize"] = str(size)
    # RFC 2349: timeout 1-255 s, granted as asked or not at all.
    asked = _number(requested.get("timeout", ""), 1, 255)
    if asked is not None:
        timeout = float(asked)
        oack["timeout"] = str(asked)
    # RFC 7440: windowsize 1-65535; the server may grant a smaller one.
    asked = _number(requested.get("windowsize", ""), 1, 65535)
    if asked is not None:
        windowsize = min(asked, limits.max_windowsize)
        oack["windowsize"] = str(windowsize)
    return Options(blksize, windowsize, timeout, oack)


class Transfer:
    """One read transfer; see the module docstring."""

    def __init__(self, blocks, options: Options, limits: Limits, now: float):
        self.blocks, self.options, self.limits = blocks, options, limits
        self.blksize, self.windowsize = options.blksize, options.windowsize
        self._packets = blocks.packets
        self.last = blocks.size // self.blksize + 1  # a short block may end it earlier
        self.acked = 0  # every block up to here is acknowledged (0: the OACK, if any)
        self.sent = 0  # the highest block sent so far
        self.waiting_oack = bool(options.oack)
        self.rto = self._timeout = options.timeout
        self.deadline = now + self.rto
        self.tries = 0
        self.done = self.failed = False
        self.bytes_sent = self.retransmits = self.duplicates = 0

    def start(self, now: float) -> list[bytes]:
        """The first packets: the OACK (RFC 2347), else the first window of DATA."""
        self._arm(now)
        return [wire.oack(self.options.oack)] if self.waiting_oack else self._window()

    def on_ack(self, block: int, now: float) -> list[bytes]:
        """The packets an ACK for 16-bit `block` calls for (often none)."""
        if self.waiting_oack:
            if block != 0:
                self.duplicates += 1
                return []
            self.waiting_oack = False
            self._arm(now)
            return self._window()
        acked = self.acked
        ahead = (block - acked) & 0xFFFF
        if ahead == 0 or ahead > self.sent - acked:
            self.duplicates += 1  # a duplicate, a stale one, or one for a block never sent
            return []
        self.acked = acked = acked + ahead
        if acked == self.last:
            self.done = True
            return []
        self.tries = 0  # _arm, inline: this is the path of every block
        self.rto = self._timeout
        self.deadline = now + self._timeout
        return self._window()

    def on_timeout(self, now: float) -> list[bytes]:
        """Retransmit what is unacknowledged, with a doubled wait; give up after `retries`."""
        if self.done or now < self.deadline:
            return []
        self.tries += 1
        if self.tries > self.limits.retries:
            self.done = self.failed = True
            return []
        self.rto = min(self.rto * 2, max(self.limits.max_timeout, self.options.timeout))
        self.deadline = now + self.rto
        packets = [wire.oack(self.options.oack)] if self.waiting_oack else self._window()
        self.retransmits += len(packets)
        return packets

    def prepare(self) -> None:
        """Have the window after everything sent so far cut ahead (see the docstring)."""
        end = self.sent + self.windowsize + 1
        if end > self.blocks.end and not self.done:
            self.blocks.ahead(self.acked + 1, min(end, self.last + 1))

    def on_error(self) -> None:
        """The client sent an ERROR (e.g. 8, options refused): the transfer is over."""
        self.done = self.failed = True

    def _arm(self, now: float) -> None:
        self.tries = 0
        self.rto = self._timeout
        self.deadline = now + self.rto

    def _window(self) -> list[bytes]:
        """DATA for blocks acked+1 … acked+windowsize (fewer at the end of the file)."""
        first = self.acked + 1
        end = first + self.windowsize
        if end > self.last + 1:
            end = self.last + 1
        packets = self._packets(first, end)
        n = first + len(packets) - 1
        if n > self.sent:
            self.sent = n
        tail = len(packets[-1]) - 4  # every packet but the last carries a whole block
        if tail < self.blksize:
            self.last = n
        self.bytes_sent += tail + (len(packets) - 1) * self.blksize
        return packets
