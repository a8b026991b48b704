"""The agent's XMPP side: stay online, take jobs as IQs from its controllers, answer.

`Agent(jid, password, host, port, engine, node, controllers=[...])` is an
agent.connection.Connection (login, keepalive, reconnect with backoff; `start()`, `run()`,
`stop()`). It:

- logs in with resource "agent" unless the JID names one and sends its presence, then
  *directed presence* to each controller, and again to any controller resource whose
  own presence it receives (a controller says hello to its agents when it starts): that
  is how a controller learns which agents are online without roster subscriptions, and
  the server tells it when one goes away (RFC 6121 4.6.3). Subscription requests are
  approved for controllers only;
- takes `<job xmlns="urn:pylabs:agent:1">` in IQs of type "set" (agent.protocol) from its
  controllers — the bare JIDs given, at least one: enrolled machines share the domain,
  and none of them may send another one jobs — and answers with the `<result>`;
- is idempotent on the job id (agent.journal): a job that runs is joined, one that ran is
  answered with its recorded result, so the controller can always send a job again to
  learn its outcome and never makes it run twice;
- runs at most `max_jobs` jobs at once: one more is answered at once with the error
  `resource-constraint` (type "wait"), to be sent again later — a queue here would hide
  the load from the controller, which queues jobs itself;
- streams progress while a job runs: every `progress_interval` seconds, a message to the
  controller resource that sent (or last re-sent) the job — the first one saying it
  still runs, the next ones when output came since (scripts only; tasklet output comes
  with the result). A job done within the first interval sends none;
- stops a running job on `<cancel id=…/>` from a controller;
- answers with an IQ error, and keeps serving: `bad-request` with the reason for a
  payload that does not parse, `feature-not-implemented` for a job type it does not
  know, `forbidden` for another sender, `item-not-found` for a cancel of no running job,
  `internal-server-error` for a bug.
"""

import asyncio
import logging
from dataclasses import dataclass, field

import slixmpp
from slixmpp.stanza import Iq
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from agent import jobs
from agent.connection import (  # noqa: F401 - the names the agent has always offered
    BACKOFF_FIRST,
    BACKOFF_MAX,
    KEEPALIVE,
    KEEPALIVE_TIMEOUT,
    Connection,
    is_loopback,
    next_delay,
)
from agent.journal import Journal
from agent.protocol import (
    NS,
    Job,
    JobResult,
    Progress,
    ProtocolError,
    UnknownJobType,
    parse_cancel,
    parse_job,
    progress_element,
    result_element,
)

log = logging.getLogger(__name__)

RESOURCE = "agent"
MAX_JOBS = 4
PROGRESS_INTERVAL = 0.5  # seconds between two progress messages of a job


class JobStanza(ElementBase):
    """The <job/> payload, so that slixmpp routes IQs carrying it to the agent."""

    name = "job"
    namespace = NS
    plugin_attrib = "agent_job"
    interfaces: set = set()


class CancelStanza(ElementBase):
    """The <cancel/> payload."""

    name = "cancel"
    namespace = NS
    plugin_attrib = "agent_cancel"
    interfaces: set = set()


register_stanza_plugin(Iq, JobStanza)
register_stanza_plugin(Iq, CancelStanza)


class Refused(Exception):
    """A job the agent answers with an IQ error: `condition`, `text`, `etype`."""

    def __init__(self, condition: str, text: str, etype: str = "modify"):
        super().__init__(text)
        self.condition, self.text, self.etype = condition, text, etype


@dataclass
class Run:
    """A job running here: its task, its cancel switch, where its progress goes."""

    job: Job
    target: slixmpp.JID
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[str] = field(default_factory=list)
    seq: int = 0
    task: asyncio.Task | None = None


class Agent(Connection):
    """An XMPP client that runs jobs with `engine` for this machine (`node`: its facts)."""

    def __init__(self, jid: str, password: str, host: str, port: int, engine, node: dict | None = None,
                 *, controllers: list[str] | None = None, plaintext: bool | None = None,
                 max_jobs: int = MAX_JOBS, journal: Journal | None = None,
                 progress_interval: float = PROGRESS_INTERVAL, keepalive: float = KEEPALIVE,
                 keepalive_timeout: float = KEEPALIVE_TIMEOUT):
        jid = jid if "/" in jid else f"{jid}/{RESOURCE}"
        super().__init__(jid, password, host, port, plaintext=plaintext, keepalive=keepalive,
                         keepalive_timeout=keepalive_timeout)
        self.engine, self.node = engine, dict(node or {})
        self.controllers = {slixmpp.JID(c).bare for c in controllers or ()}
        if not self.controllers:
            raise ValueError("an agent needs at least one controller JID (who may send it jobs)")
        if max_jobs < 1:
            raise ValueError("max_jobs must be at least 1")
        self.max_jobs, self.progress_interval = max_jobs, progress_interval
        self.journal = journal if journal is not None else Journal()
        self.runs: dict[str, Run] = {}
        self._handlers: set[asyncio.Task] = set()
        self.auto_authorize, self.auto_subscribe = None, False
        self.register_handler(CoroutineCallback(
            "pylabs agent job", StanzaPath("iq@type=set/agent_job"), self._on_job))
        self.register_handler(CoroutineCallback(
            "pylabs agent cancel", StanzaPath("iq@type=set/agent_cancel"), self._on_cancel))
        self.add_event_handler("presence_available", self._on_presence)
        self.add_event_handler("presence_subscribe", self._on_subscribe)

    async def stop(self, wait: float = 2.0) -> None:
        """End running jobs, close the stream, end the reconnect loop."""
        for task in [r.task for r in self.runs.values() if r.task] + list(self._handlers):
            task.cancel()
        await super().stop(wait)

    def _on_session_start(self) -> None:
        self.send_presence()
        for controller in sorted(self.controllers):
            self.send_presence(pto=controller)
        log.info("%s: online (session %d)", self.boundjid.full, self.sessions)

    def _on_presence(self, presence) -> None:
        sender = presence["from"]
        if sender.bare in self.controllers and sender.resource:
            self.send_presence(pto=sender)  # a controller (re)started: tell it we are here

    def _on_subscribe(self, presence) -> None:
        sender = presence["from"].bare
        self.send_presence(pto=sender, ptype="subscribed" if sender in self.controllers else "unsubscribed")

    async def _on_job(self, iq: Iq) -> None:
        await self._guarded(iq, self._answer_job)

    async def _on_cancel(self, iq: Iq) -> None:
        await self._guarded(iq, self._answer_cancel)

    async def _guarded(self, iq: Iq, answer) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            if iq["from"].bare not in self.controllers:
                log.warning("refused: %s is not a controller", iq["from"])
                raise Refused("forbidden", "not a controller of this agent", "auth")
            await answer(iq)
        except Refused as exc:
            _send_error(iq, exc.condition, exc.text, exc.etype)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job from %s failed", iq["from"])
            _send_error(iq, "internal-server-error", "the agent failed to run the job", "cancel")
        finally:
            self._handlers.discard(task)

    async def _answer_job(self, iq: Iq) -> None:
        try:
            job = parse_job(iq["agent_job"].xml)
        except UnknownJobType as exc:
            raise Refused("feature-not-implemented", exc.reason, "cancel") from None
        except ProtocolError as exc:
            log.debug("malformed job from %s: %s", iq["from"], exc.reason)
            raise Refused("bad-request", exc.reason) from None
        result = await self._result_of(job, iq["from"])
        reply = iq.reply(clear=True)
        reply.append(result_element(result))
        reply.send()

    async def _answer_cancel(self, iq: Iq) -> None:
        try:
            job_id = parse_cancel(iq["agent_cancel"].xml)
        except ProtocolError as exc:
            raise Refused("bad-request", exc.reason) from None
        run = self.runs.get(job_id)
        if run is None:
            raise Refused("item-not-found", f"no job {job_id} runs here", "cancel")
        log.info("job %s: cancelled by %s", job_id, iq["from"])
        run.cancel.set()
        iq.reply(clear=True).send()

    async def _result_of(self, job: Job, sender: slixmpp.JID) -> JobResult:
        """The job's result: joined if it runs, recorded if it ran, else from running it now."""
        run = self.runs.get(job.id)
        if run is not None:
            log.info("job %s from %s: already running, joined", job.id, sender)
            run.target = sender
            return await asyncio.shield(run.task)
        known = self.journal.result(job.id)
        if known is not None:
            log.info("job %s from %s: ran before, answered from the journal", job.id, sender)
            return known
        if len(self.runs) >= self.max_jobs:
            raise Refused("resource-constraint", f"{self.max_jobs} jobs already run here; send it later",
                          "wait")
        log.info("job %s from %s: %s", job.id, sender, type(job).__name__)
        run = self.runs[job.id] = Run(job, sender)
        self.journal.begin(job.id)
        run.task = asyncio.ensure_future(self._execute(run))
        return await asyncio.shield(run.task)

    async def _execute(self, run: Run) -> JobResult:
        streamer = asyncio.ensure_future(self._stream(run))
        try:
            result = await jobs.run_job(run.job, self.engine, self.node, run.pending.append, run.cancel)
        except Exception:
            log.exception("job %s: the agent failed to run it", run.job.id)
            result = JobResult(run.job.id, "failed", output="the agent failed to run the job\n")
        finally:
            streamer.cancel()
            self.runs.pop(run.job.id, None)
        self.journal.done(run.job.id, result)
        return result

    async def _stream(self, run: Run) -> None:
        """Every progress_interval seconds, send the output that came (the first time, even none)."""
        while True:
            await asyncio.sleep(self.progress_interval)
            if self.connected() and (run.seq == 0 or run.pending):
                text, run.pending[:] = "".join(run.pending), []
                run.seq += 1
                msg = self.make_message(mto=run.target, mtype="normal")
                msg.append(progress_element(Progress(run.job.id, run.seq, text)))
                msg.send()


def _send_error(iq: Iq, condition: str, text: str, etype: str = "modify") -> None:
    reply = iq.reply(clear=True)
    reply["type"] = "error"
    reply["error"]["condition"] = condition
    reply["error"]["text"] = text[:500]
    reply["error"]["type"] = etype
    reply.send()
