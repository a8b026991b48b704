"""The appliance's side of a job: send it to an agent and wait for its result.

`await send_job(client, "node1@rack.test/agent", job, timeout)` sends the job in an IQ
"set" from any connected slixmpp client and returns the agent's JobResult. Give `timeout`
some seconds more than `job.timeout`: it bounds the whole round trip. Failures come back
as one exception type, JobError, with `condition` ("timeout" when no answer came in time,
"malformed-result" when the answer does not parse, else the XMPP error condition, such as
"bad-request", "forbidden" or "service-unavailable" for an agent that is not online) and
`text`.

`await cancel_job(client, to_jid, job_id, timeout)` asks the agent to stop a running job;
True when it did, False when no such job runs there (it had ended, or never came).

The answers are matched by one handler per client, keyed by IQ id (and checked against
the JID asked, as slixmpp's own matcher does). slixmpp's `iq.send()` registers a handler
per IQ and tries every one against each stanza that arrives: with a thousand jobs in
flight that alone was most of a fan-out's time.
"""

import asyncio

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher.base import MatcherBase

from agent.protocol import NS, Job, JobResult, ProtocolError, cancel_element, job_element, parse_result


class JobError(Exception):
    """A job that gave no result: `condition` says what went wrong, `text` the details."""

    def __init__(self, condition: str, text: str = ""):
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition, self.text = condition, text


class _Answers(MatcherBase):
    """The IQs sent through this module that await an answer, by id: (JID asked, future)."""

    def __init__(self, client: slixmpp.ClientXMPP):
        super().__init__(None)
        self.client, self.waiting = client, {}
        client.register_handler(Callback("pylabs answers", self, self._answer))

    @classmethod
    def of(cls, client: slixmpp.ClientXMPP) -> "_Answers":
        answers = getattr(client, "_pylabs_answers", None)
        if answers is None:
            answers = client._pylabs_answers = cls(client)
        return answers

    def match(self, xml) -> bool:
        waiting = self.waiting.get(xml.get_toplevel_attr("id", ""))
        if waiting is None or xml.name != "iq" or xml.get_toplevel_attr("type") not in ("result", "error"):
            return False
        asked, me = waiting[0], self.client.boundjid
        return xml.get_toplevel_attr("from", "") in ("", me.bare, me.domain, asked.full, asked.bare,
                                                     asked.domain)

    def _answer(self, iq) -> None:
        _, future = self.waiting.pop(iq["id"], (None, None))
        if future is None or future.done():
            return
        if iq["type"] == "error":
            future.set_exception(IqError(iq))
        else:
            future.set_result(iq)

    async def send(self, iq, timeout: float):
        """Send `iq`; its answer (IqError for an error, IqTimeout after `timeout` s)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting[iq["id"]] = (slixmpp.JID(iq["to"]), future)
        try:
            self.client.send(iq)
            async with asyncio.timeout(timeout):  # not wait_for: see connection.wait_event
                return await future
        except TimeoutError:
            raise IqTimeout(iq) from None
        finally:
            self.waiting.pop(iq["id"], None)


async def send_job(client: slixmpp.ClientXMPP, to_jid: str, job: Job, timeout: float) -> JobResult:
    """Send `job` to the agent at full JID `to_jid`; its result, or JobError."""
    iq = client.make_iq_set(ito=to_jid)
    iq.append(job_element(job))
    try:
        answer = await _Answers.of(client).send(iq, timeout)
    except IqTimeout:
        raise JobError("timeout", f"no answer from {to_jid} in {timeout:g} s") from None
    except IqError as exc:
        raise JobError(exc.condition, exc.text) from None
    payload = answer.xml.find(f"{{{NS}}}result")
    if payload is None:
        raise JobError("malformed-result", "the answer has no <result>")
    try:
        result = parse_result(payload)
    except ProtocolError as exc:
        raise JobError("malformed-result", exc.reason) from None
    if result.id != job.id:
        raise JobError("malformed-result", f"the answer is for job {result.id}, not {job.id}")
    return result


async def cancel_job(client: slixmpp.ClientXMPP, to_jid: str, job_id: str, timeout: float) -> bool:
    """Ask the agent at full JID `to_jid` to stop job `job_id`; JobError if it cannot be asked."""
    iq = client.make_iq_set(ito=to_jid)
    iq.append(cancel_element(job_id))
    try:
        await _Answers.of(client).send(iq, timeout)
    except IqTimeout:
        raise JobError("timeout", f"no answer from {to_jid} in {timeout:g} s") from None
    except IqError as exc:
        if exc.condition == "item-not-found":
            return False
        raise JobError(exc.condition, exc.text) from None
    return True
