"""The appliance's XMPP connection as the controller: it sends jobs and knows who is online.

`Controller(jid, password, host, port, agents=...)` is an agent.connection.Connection
(reconnect with backoff, keepalive pings) logged in as the controller JID ([xmpp] user @
[node] domain) with resource "controller". The workflow engine and the monitoring
scheduler share it:

- `await send_job(agent_jid, job, timeout)` sends an agent.protocol job to an agent (bare
  JID: to its online resource, "agent" preferred) and returns its JobResult; failures
  are agent.dispatch.JobError — condition "offline" when the agent (or the controller
  itself) is not online, else the agent's XMPP error or "timeout";
- `await cancel_job(agent_jid, job_id)` asks the agent to stop a job (True if it did);
- `online()` is the set of bare JIDs online now.

How presence reaches it, without roster subscriptions: agents send directed presence to
their controllers when their session starts, and the server sends the controller their
"unavailable" when they go (RFC 6121 4.6.3). When the controller's own session starts,
it sends directed presence to every agent JID `agents()` returns (the Agent objects in
OSIS): each online agent answers with its presence. So either side may restart.
When the controller's session ends, everyone is offline for it until they answer again.

Listeners: `on_presence(fn)` — fn(bare_jid, online) when an account comes online or goes
offline; `on_progress(fn)` — fn(bare_jid, agent.protocol.Progress) for each progress
message of a running job (a malformed one is counted in `malformed` and dropped). A
listener that raises is logged and the others still run. Both return a function that
unregisters the listener.
"""

import logging
from collections.abc import Callable, Iterable

import slixmpp
from slixmpp.stanza import Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from agent import dispatch
from agent.connection import KEEPALIVE, KEEPALIVE_TIMEOUT, Connection
from agent.dispatch import JobError
from agent.protocol import NS, Job, JobResult, Progress, ProtocolError, parse_progress
from appliance.fabric.presence import Presence

log = logging.getLogger("appliance.fabric")

RESOURCE = "controller"
CANCEL_TIMEOUT = 10.0  # seconds for an agent to answer a cancel


class ProgressStanza(ElementBase):
    """The <progress/> payload of an agent's message, routed to the controller."""

    name = "progress"
    namespace = NS
    plugin_attrib = "agent_progress"
    interfaces: set = set()


register_stanza_plugin(Message, ProgressStanza)


class Controller(Connection):
    """The controller connection; see the module docstring."""

    def __init__(self, jid: str, password: str, host: str, port: int, *,
                 agents: Callable[[], Iterable[str]] = tuple, plaintext: bool | None = None,
                 keepalive: float = KEEPALIVE, keepalive_timeout: float = KEEPALIVE_TIMEOUT):
        bare = slixmpp.JID(jid).bare
        super().__init__(f"{bare}/{RESOURCE}", password, host, port, plaintext=plaintext,
                         keepalive=keepalive, keepalive_timeout=keepalive_timeout)
        self.agents = agents
        self.presence = Presence()
        self.malformed = 0
        self._presence_listeners: list[Callable[[str, bool], None]] = []
        self._progress_listeners: list[Callable[[str, Progress], None]] = []
        self.auto_authorize, self.auto_subscribe = None, False
        self.add_event_handler("presence_available", self._available)
        self.add_event_handler("presence_unavailable", self._unavailable)
        self.register_handler(Callback("pylabs progress", StanzaPath("message/agent_progress"),
                                       self._progress))

    # --- what the engine and the scheduler use -----------------------------------------------

    def online(self) -> set[str]:
        """The bare JIDs of the accounts online now (agents, as far as presence tells)."""
        return self.presence.online()

    def on_presence(self, listener: Callable[[str, bool], None]) -> Callable[[], None]:
        """Call listener(bare_jid, online) on every change; returns what unregisters it."""
        return _listen(self._presence_listeners, listener)

    def on_progress(self, listener: Callable[[str, Progress], None]) -> Callable[[], None]:
        """Call listener(bare_jid, progress) for each progress message; returns what unregisters it."""
        return _listen(self._progress_listeners, listener)

    async def send_job(self, agent_jid: str, job: Job, timeout: float) -> JobResult:
        """Send `job` to the agent; its result, or JobError."""
        return await dispatch.send_job(self, self._target(agent_jid), job, timeout)

    async def cancel_job(self, agent_jid: str, job_id: str, timeout: float = CANCEL_TIMEOUT) -> bool:
        """Ask the agent to stop job `job_id`: True if it did, False if it ran no such job."""
        return await dispatch.cancel_job(self, self._target(agent_jid), job_id, timeout)

    def _target(self, agent_jid: str) -> str:
        if not self.connected():
            raise JobError("offline", "the controller is not connected to the XMPP server")
        jid = slixmpp.JID(agent_jid)
        if jid.resource:
            if self.presence.has(jid.bare, jid.resource):
                return jid.full
        else:
            resource = self.presence.resource(jid.bare)
            if resource is not None:
                return f"{jid.bare}/{resource}"
        raise JobError("offline", f"{agent_jid} is not online")

    # --- presence ----------------------------------------------------------------------------

    def _on_session_start(self) -> None:
        self.send_presence()
        hello = 0
        for jid in self._agent_jids():
            self.send_presence(pto=jid)  # an online agent answers with its presence
            hello += 1
        log.info("%s: online (session %d); said hello to %d agents", self.boundjid.full, self.sessions, hello)

    def _on_session_end(self) -> None:
        for bare in self.presence.clear():
            self._tell_presence(bare, False)

    def _agent_jids(self) -> list[str]:
        try:
            return sorted({slixmpp.JID(j).bare for j in self.agents() if j})
        except Exception:
            log.exception("the list of agents to greet is not available")
            return []

    def _available(self, presence) -> None:
        sender = presence["from"]
        if sender.bare == self.boundjid.bare or not sender.resource:
            return
        if self.presence.available(sender.bare, sender.resource):
            self._tell_presence(sender.bare, True)

    def _unavailable(self, presence) -> None:
        sender = presence["from"]
        if self.presence.unavailable(sender.bare, sender.resource):
            self._tell_presence(sender.bare, False)

    def _tell_presence(self, bare: str, online: bool) -> None:
        log.debug("%s is %s", bare, "online" if online else "offline")
        for listener in list(self._presence_listeners):
            try:
                listener(bare, online)
            except Exception:
                log.exception("a presence listener failed")

    # --- progress ----------------------------------------------------------------------------

    def _progress(self, msg) -> None:
        try:
            progress = parse_progress(msg["agent_progress"].xml)
        except ProtocolError as exc:
            self.malformed += 1
            log.debug("malformed progress from %s: %s", msg["from"], exc.reason)
            return
        for listener in list(self._progress_listeners):
            try:
                listener(msg["from"].bare, progress)
            except Exception:
                log.exception("a progress listener failed")


def _listen(listeners: list, listener) -> Callable[[], None]:
    listeners.append(listener)

    def unregister() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return unregister
