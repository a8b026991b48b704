"""The agent's job messages: IQ payloads in namespace `urn:pylabs:agent:1`, built and parsed.

Pure: no I/O, no asyncio, no slixmpp. The appliance sends a job in an IQ of type "set" to
the agent's full JID; the agent answers with a result in the IQ of type "result", or with
an IQ error (`bad-request` for a payload that does not parse, `forbidden` for a sender it
does not take jobs from, `internal-server-error` for a bug) carrying a short text.

A job runs either tasklets by tag (params a JSON object, may be empty) or a shell script::

    <job xmlns="urn:pylabs:agent:1" id="j-42" timeout="30">
      <tasklet tags="facts,inventory">{"sys": "/sys"}</tasklet>
    </job>

    <job xmlns="urn:pylabs:agent:1" id="j-43" timeout="5"><script>uname -a</script></job>

The result carries the job's id, a status, the exit status of a script (absent for
tasklets), a JSON value (for tasklets, the list of the engine's per-tasklet results) and
the captured output (stdout and stderr together)::

    <result xmlns="urn:pylabs:agent:1" id="j-43" status="ok" exit="0">
      <value>null</value><output>Linux node1 6.1.0 ...</output>
    </result>

While a job runs the agent streams its progress to the controller that sent it, in
messages (type "normal") carrying a numbered chunk of output (seq counts from 1 per run;
a lost message only loses log lines, the result still carries the output)::

    <progress xmlns="urn:pylabs:agent:1" id="j-43" seq="1">Linux node1 ...</progress>

The controller stops a running job with an IQ "set" carrying `<cancel id="j-43"/>`: the
agent ends it, the job's own IQ is answered with status "cancelled", and the cancel IQ
with an empty result (`item-not-found` when no job with that id runs there).

Rules (a violation raises ProtocolError with the reason):

- `id`: 1-64 characters of letters, digits and `. _ : -`.
- `timeout`: seconds, a number with 0 < timeout <= MAX_TIMEOUT.
- exactly one child, `tasklet` or `script` (another single child raises UnknownJobType,
  which the agent answers with `feature-not-implemented`); `tags` is a comma-separated, non-empty list of
  names (letters, digits, `_ . -`); params text is a JSON object (empty text means {});
  a script is non-empty text.
- `status` is one of STATUSES; `exit` an integer; `value` JSON (absent means null).
- Sizes: a payload is at most MAX_PAYLOAD bytes, a script or params at most MAX_SCRIPT,
  a value MAX_VALUE and output MAX_OUTPUT bytes of UTF-8. `clip_output` shortens output to
  fit (keeping its head and its tail); characters XML cannot carry become U+FFFD.
- No DTD: a payload with `<!DOCTYPE` is refused (no entity expansion).
- XML turns CR and CRLF into LF in text (XML 1.0 section 2.11): scripts and output arrive
  with LF line ends.
"""

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NS = "urn:pylabs:agent:1"
STATUSES = ("ok", "failed", "timed_out", "cancelled")
MAX_PAYLOAD = 256 * 1024
MAX_SCRIPT = 64 * 1024
MAX_VALUE = 64 * 1024
MAX_OUTPUT = 32 * 1024
MAX_TIMEOUT = 86400.0

_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_TAG = re.compile(r"[A-Za-z0-9_.-]+")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ProtocolError(ValueError):
    """A job or result payload that does not follow the protocol; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnknownJobType(ProtocolError):
    """A well-formed job of a type this agent does not know (a newer controller's)."""


@dataclass(frozen=True)
class TaskletJob:
    """Run the tasklets having all of `tags` with `params`."""

    id: str
    timeout: float
    tags: tuple[str, ...]
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptJob:
    """Run `script` with /bin/sh -c."""

    id: str
    timeout: float
    script: str


Job = TaskletJob | ScriptJob


@dataclass(frozen=True)
class JobResult:
    """What a job gave: `status` in STATUSES, a script's `exit`, a JSON `value`, `output`."""

    id: str
    status: str
    exit: int | None = None
    value: object = None
    output: str = ""


@dataclass(frozen=True)
class Progress:
    """A chunk of a running job's output; `seq` numbers the chunks of one run from 1."""

    id: str
    seq: int
    output: str = ""


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


# --- building --------------------------------------------------------------------------------


def job_element(job: Job) -> ET.Element:
    """The <job> element of `job` (raises ProtocolError if `job` breaks a rule)."""
    _check_id(job.id)
    _check_timeout(job.timeout)
    root = ET.Element(_q("job"), id=job.id, timeout=f"{job.timeout:g}")
    if isinstance(job, TaskletJob):
        _check_tags(list(job.tags))
        child = ET.SubElement(root, _q("tasklet"), tags=",".join(job.tags))
        child.text = _json_text(job.params, MAX_SCRIPT, "params")
    else:
        _check_script(job.script)
        ET.SubElement(root, _q("script")).text = job.script
    return root


def result_element(result: JobResult) -> ET.Element:
    """The <result> element of `result`; output is clipped to MAX_OUTPUT, not refused."""
    _check_id(result.id)
    if result.status not in STATUSES:
        raise ProtocolError(f"status {result.status!r} is not one of {', '.join(STATUSES)}")
    root = ET.Element(_q("result"), id=result.id, status=result.status)
    if result.exit is not None:
        root.set("exit", str(int(result.exit)))
    ET.SubElement(root, _q("value")).text = _json_text(result.value, MAX_VALUE, "value")
    ET.SubElement(root, _q("output")).text = clip_output(result.output)
    return root


def progress_element(progress: Progress) -> ET.Element:
    """The <progress> element of `progress`; output is clipped to MAX_OUTPUT."""
    _check_id(progress.id)
    if not isinstance(progress.seq, int) or progress.seq < 1:
        raise ProtocolError(f"seq {progress.seq!r:.20} is not a positive integer")
    root = ET.Element(_q("progress"), id=progress.id, seq=str(progress.seq))
    root.text = clip_output(progress.output)
    return root


def cancel_element(job_id: str) -> ET.Element:
    """The <cancel> element asking an agent to stop job `job_id`."""
    _check_id(job_id)
    return ET.Element(_q("cancel"), id=job_id)


def build_job(job: Job) -> bytes:
    """`job` as UTF-8 XML bytes."""
    return ET.tostring(job_element(job), encoding="utf-8", xml_declaration=False)


def build_result(result: JobResult) -> bytes:
    """`result` as UTF-8 XML bytes."""
    return ET.tostring(result_element(result), encoding="utf-8", xml_declaration=False)


def clip_output(text: str, limit: int = MAX_OUTPUT) -> str:
    """`text` made XML-safe and at most `limit` UTF-8 bytes, keeping its head and tail."""
    text = _NOT_XML.sub("\ufffd", text)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    marker = f"\n[... {len(data) - limit} bytes cut ...]\n".encode()
    half = max(0, (limit - len(marker)) // 2)
    head = data[:half].decode("utf-8", "ignore")
    tail = data[len(data) - half:].decode("utf-8", "ignore")
    return head + marker.decode() + tail


# --- parsing ---------------------------------------------------------------------------------


def parse_job(payload: bytes | str | ET.Element) -> Job:
    """The job in `payload` (bytes, text or an element already parsed); else ProtocolError."""
    root = _root(payload, "job")
    job_id, timeout = _attr_id(root), _attr_timeout(root)
    children = list(root)
    if len(children) != 1:
        raise ProtocolError("a job has exactly one child, <tasklet> or <script>")
    child = children[0]
    if child.tag not in (_q("tasklet"), _q("script")):
        raise UnknownJobType(f"unknown job type <{child.tag.rpartition('}')[2][:40]}>")
    if child.tag == _q("script"):
        script = child.text or ""
        _check_script(script)
        return ScriptJob(job_id, timeout, script)
    tags = (child.get("tags") or "").split(",")
    _check_tags(tags)
    params = _parse_json(child.text or "{}", MAX_SCRIPT, "params")
    if not isinstance(params, dict):
        raise ProtocolError("params must be a JSON object")
    return TaskletJob(job_id, timeout, tuple(tags), params)


def parse_result(payload: bytes | str | ET.Element) -> JobResult:
    """The result in `payload`; else ProtocolError."""
    root = _root(payload, "result")
    status = root.get("status")
    if status not in STATUSES:
        raise ProtocolError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    exit_status = root.get("exit")
    if exit_status is not None and not re.fullmatch(r"-?[0-9]{1,10}", exit_status):
        raise ProtocolError(f"exit {exit_status[:20]!r} is not an integer")
    value_el, output_el = root.find(_q("value")), root.find(_q("output"))
    value = None if value_el is None else _parse_json(value_el.text or "null", MAX_VALUE, "value")
    output = "" if output_el is None else output_el.text or ""
    if len(output.encode("utf-8", "surrogatepass")) > MAX_OUTPUT:
        raise ProtocolError(f"output is longer than {MAX_OUTPUT} bytes")
    return JobResult(_attr_id(root), status, None if exit_status is None else int(exit_status),
                     value, output)


def parse_progress(payload: bytes | str | ET.Element) -> Progress:
    """The progress chunk in `payload`; else ProtocolError."""
    root = _root(payload, "progress")
    seq = root.get("seq") or ""
    if not re.fullmatch(r"[1-9][0-9]{0,9}", seq):
        raise ProtocolError(f"seq {seq[:20]!r} is not a positive integer")
    output = root.text or ""
    if len(output.encode("utf-8", "surrogatepass")) > MAX_OUTPUT:
        raise ProtocolError(f"output is longer than {MAX_OUTPUT} bytes")
    return Progress(_attr_id(root), int(seq), output)


def parse_cancel(payload: bytes | str | ET.Element) -> str:
    """The id of the job a <cancel> payload names; else ProtocolError."""
    return _attr_id(_root(payload, "cancel"))


def _root(payload: bytes | str | ET.Element, name: str) -> ET.Element:
    if not isinstance(payload, ET.Element):
        payload = _parse_xml(payload)
    if payload.tag != _q(name):
        raise ProtocolError(f"expected <{name} xmlns='{NS}'>, got {payload.tag[:80]!r}")
    return payload


def _parse_xml(data: bytes | str) -> ET.Element:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > MAX_PAYLOAD:
        raise ProtocolError(f"payload is longer than {MAX_PAYLOAD} bytes")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise ProtocolError("a DTD is not allowed")
    try:
        return ET.fromstring(data)
    except (ET.ParseError, ValueError, LookupError, UnicodeError) as exc:
        raise ProtocolError(f"not well-formed XML: {exc}") from None


def _attr_id(root: ET.Element) -> str:
    job_id = root.get("id")
    _check_id(job_id)
    return job_id


def _attr_timeout(root: ET.Element) -> float:
    text = root.get("timeout")
    try:
        timeout = float(text)
    except (TypeError, ValueError):
        raise ProtocolError(f"timeout {text!r:.40} is not a number") from None
    _check_timeout(timeout)
    return timeout


def is_job_id(text: object) -> bool:
    """Whether `text` is a valid job id."""
    return isinstance(text, str) and _ID.fullmatch(text) is not None


def _check_id(job_id: object) -> None:
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        raise ProtocolError(f"id {job_id!r:.80} is not 1-64 of letters, digits and . _ : -")


def _check_timeout(timeout: object) -> None:
    if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise ProtocolError(f"timeout {timeout!r:.40} is not in (0, {MAX_TIMEOUT:g}] seconds")


def _check_tags(tags: list[str]) -> None:
    if not tags or not all(isinstance(t, str) and _TAG.fullmatch(t) for t in tags):
        raise ProtocolError(f"tags {','.join(map(str, tags))[:80]!r} are not a list of names")


def _check_script(script: object) -> None:
    if not isinstance(script, str) or not script.strip():
        raise ProtocolError("the script is empty")
    if len(script.encode("utf-8", "surrogatepass")) > MAX_SCRIPT:
        raise ProtocolError(f"the script is longer than {MAX_SCRIPT} bytes")
    if _NOT_XML.search(script):
        raise ProtocolError("the script has characters XML cannot carry")


def _json_text(value: object, limit: int, what: str) -> str:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} is not JSON: {exc}") from None
    if len(text) > limit:
        raise ProtocolError(f"{what} is longer than {limit} bytes of JSON")
    return text


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _parse_json(text: str, limit: int, what: str) -> object:
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        raise ProtocolError(f"{what} is longer than {limit} bytes")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} is not JSON: {exc}") from None
