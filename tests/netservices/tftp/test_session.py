"""The transfer state machine, without sockets: negotiation, windows, ACKs, timeouts."""

import pytest

from netservices.tftp import wire
from netservices.tftp.blocks import BytesBlocks, StreamBlocks
from netservices.tftp.session import Limits, Options, Transfer, negotiate

LIMITS = Limits(max_blksize=1468, max_windowsize=16, timeout=1.0, max_timeout=4.0, retries=3)

NEGOTIATION = {
    "nothing asked": ({}, 100, Options(512, 1, 1.0, {})),
    "blksize granted": ({"blksize": "1024"}, 100, Options(1024, 1, 1.0, {"blksize": "1024"})),
    "blksize capped": ({"blksize": "65464"}, 100, Options(1468, 1, 1.0, {"blksize": "1468"})),
    "blksize minimum 8": ({"blksize": "8"}, 100, Options(8, 1, 1.0, {"blksize": "8"})),
    "blksize 7 ignored": ({"blksize": "7"}, 100, Options(512, 1, 1.0, {})),
    "blksize not a number ignored": ({"blksize": "abc"}, 100, Options(512, 1, 1.0, {})),
    "blksize negative ignored": ({"blksize": "-5"}, 100, Options(512, 1, 1.0, {})),
    "tsize answered": ({"tsize": "0"}, 1234, Options(512, 1, 1.0, {"tsize": "1234"})),
    "tsize of unknown size left out": ({"tsize": "0"}, None, Options(512, 1, 1.0, {})),
    "timeout granted": ({"timeout": "5"}, 1, Options(512, 1, 5.0, {"timeout": "5"})),
    "timeout 0 ignored": ({"timeout": "0"}, 1, Options(512, 1, 1.0, {})),
    "timeout 256 ignored": ({"timeout": "256"}, 1, Options(512, 1, 1.0, {})),
    "windowsize granted": ({"windowsize": "4"}, 1, Options(512, 4, 1.0, {"windowsize": "4"})),
    "windowsize capped": ({"windowsize": "500"}, 1, Options(512, 16, 1.0, {"windowsize": "16"})),
    "windowsize 0 ignored": ({"windowsize": "0"}, 1, Options(512, 1, 1.0, {})),
    "unknown option ignored": ({"multicast": "", "x": "1"}, 1, Options(512, 1, 1.0, {})),
    "OVMF": ({"blksize": "1468", "windowsize": "4", "tsize": "0"}, 9,
             Options(1468, 4, 1.0, {"blksize": "1468", "tsize": "9", "windowsize": "4"})),
}


@pytest.mark.parametrize("asked,size,expected", NEGOTIATION.values(), ids=NEGOTIATION.keys())
def test_negotiation(asked, size, expected):
    assert negotiate(asked, size, LIMITS) == expected


def blocks_of(packets):
    return [wire.HEADER.unpack_from(p)[1] for p in packets]


def transfer(size=10 * 512 + 3, options=None, now=0.0):
    data = bytes(range(256)) * (size // 256 + 1)
    opts = negotiate(options or {}, size, LIMITS)
    return Transfer(BytesBlocks(data[:size], opts.blksize), opts, LIMITS, now), data[:size]


def run_lockstep(t):
    packets, out, now = t.start(0.0), b"", 0.0
    while not t.done:
        assert len(packets) == 1
        opcode, block = wire.HEADER.unpack_from(packets[0])
        if opcode == wire.DATA:
            out += packets[0][4:]
        packets = t.on_ack(block if opcode == wire.DATA else 0, now)
    return out


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 5120, 5121])
def test_lockstep_sends_the_whole_file(size):
    t, data = transfer(size)
    assert run_lockstep(t) == data and not t.failed


def test_oack_first_then_data_after_ack_0():
    t, _ = transfer(options={"blksize": "1024", "tsize": "0"})
    assert t.start(0) == [wire.oack({"blksize": "1024", "tsize": str(10 * 512 + 3)})]
    assert t.on_ack(5, 0.1) == []  # not the ACK of the OACK
    assert blocks_of(t.on_ack(0, 0.1)) == [1]


def test_window_sends_windowsize_blocks_per_ack():
    t, _ = transfer(options={"windowsize": "4"})
    t.start(0)
    assert blocks_of(t.on_ack(0, 0)) == [1, 2, 3, 4]
    assert blocks_of(t.on_ack(4, 0)) == [5, 6, 7, 8]
    assert blocks_of(t.on_ack(6, 0)) == [7, 8, 9, 10]  # go back: the client lost 7
    assert blocks_of(t.on_ack(10, 0)) == [11]  # the last (short) block
    assert t.on_ack(11, 0) == [] and t.done and not t.failed


def test_duplicate_acks_are_not_answered():
    """RFC 1123 4.2.3.1: answering duplicates doubles every packet from then on."""
    t, _ = transfer()
    t.start(0)
    assert blocks_of(t.on_ack(1, 0)) == [2]
    assert t.on_ack(1, 0) == [] and t.on_ack(1, 0) == []
    assert t.on_ack(0, 0) == [] and t.on_ack(9, 0) == []  # stale; never sent
    assert t.duplicates == 4
    assert blocks_of(t.on_ack(2, 0)) == [3]


def test_timeout_retransmits_with_backoff_then_gives_up():
    t, _ = transfer()
    assert blocks_of(t.start(0)) == [1]
    assert t.on_timeout(0.9) == []  # not yet
    times = []
    now = 0.0
    while not t.done:
        now = t.deadline
        if t.on_timeout(now):
            times.append(now)
    assert times == [1.0, 3.0, 7.0]  # waits of 1, 2, 4 s (max_timeout 4), then 3 retries
    assert t.failed and t.retransmits == 3


def test_an_ack_resets_the_backoff():
    t, _ = transfer()
    t.start(0)
    t.on_timeout(1.0)
    t.on_ack(1, 1.5)
    assert t.deadline == 2.5 and t.tries == 0


def test_block_numbers_roll_over_at_65536():
    size = 65540 * 8
    opts = negotiate({"blksize": "8"}, size, LIMITS)
    t = Transfer(BytesBlocks(bytes(size), 8), opts, LIMITS, 0)
    t.start(0)
    for n in range(65535):
        t.on_ack(n, 0)
    assert (t.acked, t.sent) == (65534, 65535)
    assert blocks_of(t.on_ack(65535, 0)) == [0]  # block 65536 goes out as 0
    assert blocks_of(t.on_ack(0, 0)) == [1]
    assert t.acked == 65536


def test_stream_of_unknown_size_ends_on_a_short_block():
    import io

    class Pipe(io.RawIOBase):  # not seekable, no size
        def __init__(self):
            self.left = 1300

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left, 100)
            b[:n] = b"x" * n
            self.left -= n
            return n

    opts = negotiate({"tsize": "0"}, None, LIMITS)
    t = Transfer(StreamBlocks(Pipe(), 512, None), opts, LIMITS, 0)
    assert run_lockstep(t) == b"x" * 1300


def _replay(prepared: bool, size: int, windowsize: int, choices: list[int], stream: bool):
    """What a transfer sends when each answer is one of: ACK the last block sent (0), ACK
    an earlier one (1), a duplicate ACK (2), a time-out (3) — with or without prepare()."""
    import io
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    opts = Options(blksize=16, windowsize=windowsize)
    blocks = StreamBlocks(io.BytesIO(data), 16, None) if stream else BytesBlocks(data, 16)
    t = Transfer(blocks, opts, Limits(retries=50), 0.0)
    sent, now = [t.start(0.0)], 0.0
    for choice in choices:
        if t.done:
            break
        if prepared:
            t.prepare()
        now += 1
        if choice == 3:
            packets = t.on_timeout(t.deadline)
        else:
            last = blocks_of(sent[-1])[-1] if sent[-1] else t.acked & 0xFFFF
            ack = {0: last, 1: max(t.acked, last - 1) & 0xFFFF, 2: t.acked & 0xFFFF}[choice]
            packets = t.on_ack(ack, now)
        sent.append([bytes(p) for p in packets])
    return sent, (t.acked, t.sent, t.last, t.done, t.bytes_sent, t.retransmits, t.duplicates)


@pytest.mark.parametrize("stream", [False, True], ids=["bytes", "stream"])
@pytest.mark.parametrize("windowsize", [1, 3, 8])
@pytest.mark.parametrize("size", [0, 15, 16, 17, 160, 161, 500])
def test_prepared_windows_change_nothing_that_is_sent(size, windowsize, stream):
    import random
    rng = random.Random(f"{size}-{windowsize}-{stream}")
    for _ in range(20):
        choices = [rng.choice([0, 0, 0, 1, 2, 3]) for _ in range(200)]
        assert _replay(True, size, windowsize, choices, stream) == _replay(False, size, windowsize, choices, stream)
    everything, state = _replay(True, size, windowsize, [0] * 200, stream)
    assert state[3] and b"".join(p[4:] for batch in everything for p in batch) == \
        (bytes(range(256)) * (size // 256 + 1))[:size]
