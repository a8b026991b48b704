"""The agent's XMPP side: log in, show presence, take jobs as IQs, answer, stay connected.

`Agent(jid, password, host, port, engine, node)` is a slixmpp ClientXMPP. Create it inside
the running event loop, then `await agent.run()` (returns after `await agent.stop()`), or
`agent.start()` to run it as a task. It:

- logs in with resource "agent" unless the JID names one, sends presence, answers
  XEP-0199 pings;
- takes `<job xmlns="urn:pylabs:agent:1">` in IQs of type "set" (agent.protocol) from its
  controllers — the bare JIDs given, which must be at least one: enrolled machines share
  the domain, and none of them may send another one jobs — runs
  each in a task (agent.jobs) and answers with the `<result>`; a payload that does not
  parse gets an IQ error `bad-request` with the reason, another sender `forbidden`, and a
  bug `internal-server-error`; the agent keeps serving;
- speaks plaintext only when `plaintext` is true, which by default it is only for a
  loopback server; otherwise it requires TLS (STARTTLS or direct TLS) as slixmpp does;
- reconnects after the server goes away or cannot be reached, waiting 1 s, then doubling
  up to 30 s (reset once a session starts), until stopped: slixmpp itself never
  reconnects a lost session, and its own connection retries are cancelled in favour of
  this loop.
"""

import asyncio
import ipaddress
import logging

import slixmpp
from slixmpp.stanza import Iq
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from agent import jobs
from agent.protocol import NS, ProtocolError, parse_job, result_element

log = logging.getLogger(__name__)

RESOURCE = "agent"
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
LOGIN_TIMEOUT = 30.0  # seconds from connect() to session_start before trying again


class JobStanza(ElementBase):
    """The <job/> payload, so that slixmpp routes IQs carrying it to the agent."""

    name = "job"
    namespace = NS
    plugin_attrib = "agent_job"
    interfaces: set = set()


register_stanza_plugin(Iq, JobStanza)


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


class Agent(slixmpp.ClientXMPP):
    """An XMPP client that runs jobs with `engine` for this machine (`node`: its facts)."""

    def __init__(self, jid: str, password: str, host: str, port: int, engine, node: dict | None = None,
                 *, controllers: list[str] | None = None, plaintext: bool | None = None):
        jid = jid if "/" in jid else f"{jid}/{RESOURCE}"
        super().__init__(jid, password)
        self.address, self.engine, self.node = (host, int(port)), engine, dict(node or {})
        self.controllers = {slixmpp.JID(c).bare for c in controllers or ()}
        if not self.controllers:
            raise ValueError("an agent needs at least one controller JID (who may send it jobs)")
        self.sessions = 0  # sessions started so far: reconnects are sessions - 1
        self._stopping = asyncio.Event()
        self._down = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        if is_loopback(host) if plaintext is None else plaintext:
            self.enable_direct_tls = self.enable_starttls = False
            self.enable_plaintext = True
            self.plugin["feature_mechanisms"].unencrypted_scram = True
        else:
            self.enable_plaintext = False
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199", {"keepalive": False})
        self.register_handler(CoroutineCallback(
            "pylabs agent job", StanzaPath("iq@type=set/agent_job"), self._on_job))
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("disconnected", lambda _: self._down.set())
        self.add_event_handler("connection_failed", lambda _: self._down.set())

    def start(self) -> asyncio.Task:
        """Run the agent as a task of the running loop."""
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
            await _wait(self._stopping, delay)
            delay = next_delay(delay)
        log.info("%s: stopped", self.boundjid.bare)

    async def stop(self, wait: float = 2.0) -> None:
        """Close the stream cleanly (bounded), end running jobs and the reconnect loop."""
        self._stopping.set()
        self.cancel_connection_attempt()
        for task in list(self._tasks):
            task.cancel()
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
        self.connect(*self.address)
        try:
            await asyncio.wait({started, down, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not started.done() or started.cancelled() or started.exception():
                self.cancel_connection_attempt()
                self.abort()
                return False
            await asyncio.wait({down, stopping}, return_when=asyncio.FIRST_COMPLETED)
            return True
        finally:
            for fut in (started, down, stopping):
                fut.cancel()

    def _on_session_start(self, _event) -> None:
        self.sessions += 1
        self.send_presence()
        log.info("%s: online (session %d)", self.boundjid.full, self.sessions)

    async def _on_job(self, iq: Iq) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._answer(iq)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job from %s failed", iq["from"])
            _send_error(iq, "internal-server-error", "the agent failed to run the job")
        finally:
            self._tasks.discard(task)

    async def _answer(self, iq: Iq) -> None:
        sender = iq["from"]
        if not self._accepts(sender):
            log.warning("job refused: %s is not a controller", sender)
            _send_error(iq, "forbidden", "not a controller of this agent", etype="auth")
            return
        try:
            job = parse_job(iq["agent_job"].xml)
        except ProtocolError as exc:
            log.debug("malformed job from %s: %s", sender, exc.reason)
            _send_error(iq, "bad-request", exc.reason)
            return
        log.info("job %s from %s: %s", job.id, sender, type(job).__name__)
        result = await jobs.run_job(job, self.engine, self.node)
        reply = iq.reply(clear=True)
        reply.append(result_element(result))
        reply.send()

    def _accepts(self, sender: slixmpp.JID) -> bool:
        return sender.bare in self.controllers


def _send_error(iq: Iq, condition: str, text: str, etype: str = "modify") -> None:
    reply = iq.reply(clear=True)
    reply["type"] = "error"
    reply["error"]["condition"] = condition
    reply["error"]["text"] = text[:500]
    reply["error"]["type"] = etype
    reply.send()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass
