"""One XMPP client connection that stays up: login, keepalive, reconnect with backoff.

`Connection(jid, password, host, port)` is a slixmpp ClientXMPP that the agent (agent.client)
and the appliance's controller (appliance.fabric.controller) both build on. Create it
inside the running event loop, then `await conn.run()` (returns after `await conn.stop()`),
or `conn.start()` to run it as a task. It:

- speaks plaintext only when `plaintext` is true, which by default it is only for a
  loopback server; otherwise it requires TLS (STARTTLS or direct TLS) as slixmpp does;
- reconnects after the server goes away or cannot be reached, waiting 1 s, then doubling
  up to 30 s (reset once a session starts), until stopped: slixmpp itself never
  reconnects a lost session, and its own connection retries are cancelled in favour of
  this loop;
- pings its server (XEP-0199) every `keepalive` seconds while a session is up; a ping
  left unanswered for `keepalive_timeout` seconds means the TCP connection is half dead
  (a peer or a NAT gone without a FIN): the connection is dropped and made again.
  Whitespace keepalives cannot tell: the kernel takes them into its send buffer.

`sessions` counts the sessions started (reconnects are sessions - 1); `connected()`
says whether a session is up now. Subclasses hook `_on_session_start` and `_on_session_end`.

Logging in costs a SCRAM key derivation (RFC 5802 Hi(), 4096 HMAC rounds), which slixmpp
computes in a Python loop: 30-45 ms of CPU a login, a minute for 1000 agents logging in on
one machine. Hi() is PBKDF2-HMAC with the hash's output length, so importing this module
makes slixmpp's SCRAM use hashlib.pbkdf2_hmac (C) instead: the same bytes, 5-15x faster.
"""

import asyncio
import hashlib
import ipaddress
import logging

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.util.sasl.mechanisms import SCRAM

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
LOGIN_TIMEOUT = 30.0  # seconds from connect() to session_start before trying again
KEEPALIVE, KEEPALIVE_TIMEOUT = 60.0, 20.0  # seconds


_SLIXMPP_HI = SCRAM.Hi


def scram_hi(mech: SCRAM, text, salt: bytes, iterations: int) -> bytes:
    """RFC 5802 Hi(text, salt, i): PBKDF2-HMAC with the SCRAM hash, output one hash long."""
    name = mech.hash().name
    if name not in hashlib.algorithms_available:
        return _SLIXMPP_HI(mech, text, salt, iterations)
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return hashlib.pbkdf2_hmac(name, data, salt, iterations)


SCRAM.Hi = scram_hi


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def next_delay(delay: float) -> float:
    """The wait after `delay` in the reconnect backoff: doubled, at most BACKOFF_MAX."""
    return min(delay * 2, BACKOFF_MAX)


class Connection(slixmpp.ClientXMPP):
    """A client connection kept up until stop(); see the module docstring."""

    def __init__(self, jid: str, password: str, host: str, port: int, *, plaintext: bool | None = None,
                 keepalive: float = KEEPALIVE, keepalive_timeout: float = KEEPALIVE_TIMEOUT):
        super().__init__(jid, password)
        self.address = (host, int(port))
        self.keepalive, self.keepalive_timeout = keepalive, keepalive_timeout
        self.sessions = 0
        self._stopping = asyncio.Event()
        self._down = asyncio.Event()
        self._up = False
        self._runner: asyncio.Task | None = None
        if is_loopback(host) if plaintext is None else plaintext:
            self.enable_direct_tls = self.enable_starttls = False
            self.enable_plaintext = True
            self.plugin["feature_mechanisms"].unencrypted_scram = True
        else:
            self.enable_plaintext = False
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199", {"keepalive": False})
        self.add_event_handler("session_start", self._fabric_session_started)
        self.add_event_handler("disconnected", self._fabric_lost)
        self.add_event_handler("connection_failed", lambda _: self._down.set())

    def connected(self) -> bool:
        """Whether a session is up now."""
        return self._up

    def start(self) -> asyncio.Task:
        """Run the connection as a task of the running loop."""
        self._runner = asyncio.ensure_future(self.run())
        return self._runner

    async def run(self) -> None:
        """Stay connected until stop(), reconnecting with backoff."""
        delay = BACKOFF_FIRST
        while not self._stopping.is_set():
            if await self._session():
                delay = BACKOFF_FIRST
            if self._stopping.is_set():
                break
            log.info("%s: offline, connecting again in %g s", self.boundjid.bare, delay)
            await wait_event(self._stopping, delay)
            delay = next_delay(delay)
        log.info("%s: stopped", self.boundjid.bare)

    async def stop(self, wait: float = 2.0) -> None:
        """Close the stream cleanly (bounded) and end the reconnect loop."""
        self._stopping.set()
        self.cancel_connection_attempt()
        try:
            await asyncio.wait_for(self.disconnect(wait=wait), wait + 3)
        except TimeoutError:
            pass
        finally:
            self.abort()
        if self._runner is not None:
            await asyncio.wait_for(asyncio.shield(self._runner), 5)

    async def _session(self) -> bool:
        """One connection: True if a session started (and has now ended)."""
        self._down.clear()
        started = asyncio.ensure_future(self.wait_until("session_start", LOGIN_TIMEOUT))
        down = asyncio.ensure_future(self._down.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        pinging = None
        self.connect(*self.address)
        try:
            await asyncio.wait({started, down, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not started.done() or started.cancelled() or started.exception():
                self.cancel_connection_attempt()
                self.abort()
                return False
            pinging = asyncio.ensure_future(self._keepalive())
            await asyncio.wait({down, stopping, pinging}, return_when=asyncio.FIRST_COMPLETED)
            if pinging.done():  # the ping went unanswered: drop this connection
                self.abort()
                await wait_event(self._down, 5)
            return True
        finally:
            for fut in (started, down, stopping, pinging):
                if fut is not None:
                    fut.cancel()

    async def _keepalive(self) -> None:
        """Return when a ping to the server goes unanswered."""
        while True:
            await asyncio.sleep(self.keepalive)
            try:
                await self.plugin["xep_0199"].ping(self.boundjid.domain, timeout=self.keepalive_timeout)
            except IqError:
                continue  # an answer, even an error, proves the stream alive
            except IqTimeout:
                log.warning("%s: no answer to a ping in %g s: the connection is dead, reconnecting",
                            self.boundjid.bare, self.keepalive_timeout)
                return

    def _fabric_session_started(self, _event) -> None:
        self.sessions += 1
        self._up = True
        self._on_session_start()

    def _fabric_lost(self, _event) -> None:
        was_up, self._up = self._up, False
        self._down.set()
        if was_up:
            self._on_session_end()

    def _on_session_start(self) -> None:
        """Called when a session has started (send presence here)."""
        self.send_presence()

    def _on_session_end(self) -> None:  # noqa: B027 - an optional hook
        """Called when a session that had started has ended."""


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; whether it was set. Cancelling the waiter always
    cancels it: Python 3.11's `asyncio.wait_for` drops a cancellation that arrives in the
    loop turn the event is set in, and a loop around it then never stops."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
