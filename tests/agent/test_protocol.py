"""Tests of agent.protocol: tables of good and bad payloads, round trips, and fuzzing."""

import json
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.protocol import (
    MAX_OUTPUT,
    MAX_PAYLOAD,
    NS,
    JobResult,
    Progress,
    ProtocolError,
    ScriptJob,
    TaskletJob,
    build_job,
    build_result,
    cancel_element,
    clip_output,
    parse_cancel,
    parse_job,
    parse_progress,
    parse_result,
    progress_element,
)

N = f'xmlns="{NS}"'

GOOD_JOBS = {
    "tasklet": (f'<job {N} id="j1" timeout="30"><tasklet tags="facts,inventory">{{"a": 1}}</tasklet></job>',
                TaskletJob("j1", 30.0, ("facts", "inventory"), {"a": 1})),
    "tasklet no params": (f'<job {N} id="j2" timeout="0.5"><tasklet tags="ping"/></job>',
                          TaskletJob("j2", 0.5, ("ping",), {})),
    "script": (f'<job {N} id="a.b:c-d_e" timeout="5"><script>echo &lt;hi&gt; &amp;&amp; exit 3</script></job>',
               ScriptJob("a.b:c-d_e", 5.0, "echo <hi> && exit 3")),
    "whitespace between elements": (f'<job {N} id="j3" timeout="1">\n  <script>true</script>\n</job>',
                                    ScriptJob("j3", 1.0, "true")),
}

BAD_JOBS = {
    "not xml": (b"hello", "not well-formed"),
    "empty": (b"", "not well-formed"),
    "wrong namespace": ('<job xmlns="urn:other" id="j" timeout="1"><script>true</script></job>', "expected <job"),
    "result not job": (f'<result {N} id="j" status="ok"/>', "expected <job"),
    "no id": (f'<job {N} timeout="1"><script>true</script></job>', "id"),
    "bad id": (f'<job {N} id="a b" timeout="1"><script>true</script></job>', "id"),
    "long id": (f'<job {N} id="{"x" * 65}" timeout="1"><script>true</script></job>', "id"),
    "no timeout": (f'<job {N} id="j"><script>true</script></job>', "timeout"),
    "zero timeout": (f'<job {N} id="j" timeout="0"><script>true</script></job>', "timeout"),
    "nan timeout": (f'<job {N} id="j" timeout="nan"><script>true</script></job>', "timeout"),
    "huge timeout": (f'<job {N} id="j" timeout="1e9"><script>true</script></job>', "timeout"),
    "no child": (f'<job {N} id="j" timeout="1"/>', "exactly one child"),
    "two children": (f'<job {N} id="j" timeout="1"><script>a</script><script>b</script></job>', "exactly one"),
    "unknown child": (f'<job {N} id="j" timeout="1"><python>1</python></job>', "unknown job type <python>"),
    "child in another namespace": (f'<job {N} id="j" timeout="1"><script xmlns="x">a</script></job>', "unknown job type"),
    "empty script": (f'<job {N} id="j" timeout="1"><script>  </script></job>', "empty"),
    "long script": (f'<job {N} id="j" timeout="1"><script>{"x" * 70000}</script></job>', "longer"),
    "no tags": (f'<job {N} id="j" timeout="1"><tasklet/></job>', "tags"),
    "empty tag": (f'<job {N} id="j" timeout="1"><tasklet tags="a,,b"/></job>', "tags"),
    "params not json": (f'<job {N} id="j" timeout="1"><tasklet tags="a">{{nope</tasklet></job>', "not JSON"),
    "params a list": (f'<job {N} id="j" timeout="1"><tasklet tags="a">[1]</tasklet></job>', "object"),
    "params NaN": (f'<job {N} id="j" timeout="1"><tasklet tags="a">{{"x": NaN}}</tasklet></job>', "not JSON"),
    "deep params": (f'<job {N} id="j" timeout="1"><tasklet tags="a">{"[" * 100000}</tasklet></job>', "longer"),
    "dtd": (f'<!DOCTYPE job [<!ENTITY x "y">]><job {N} id="j" timeout="1"><script>&x;</script></job>', "DTD"),
    "too big": (b"<" + b"x" * MAX_PAYLOAD, "longer"),
}


@pytest.mark.parametrize("case", GOOD_JOBS, ids=str)
def test_good_jobs_parse(case):
    text, job = GOOD_JOBS[case]
    assert parse_job(text) == job
    assert parse_job(text.encode()) == job
    assert parse_job(build_job(job)) == job  # and round-trip


@pytest.mark.parametrize("case", BAD_JOBS, ids=str)
def test_bad_jobs_raise_protocol_error_with_a_reason(case):
    payload, reason = BAD_JOBS[case]
    with pytest.raises(ProtocolError) as info:
        parse_job(payload)
    assert reason in info.value.reason


RESULTS = {
    "script ok": JobResult("j1", "ok", 0, None, "hello\n"),
    "script failed": JobResult("j1", "failed", 3, None, ""),
    "killed by signal": JobResult("j1", "failed", -9, None, "x"),
    "tasklets": JobResult("j2", "ok", None, [{"name": "ping", "value": "pong"}], "--- ping: ok\n"),
    "timed out": JobResult("j3", "timed_out", None, None, "killed after 1 s\n"),
    "unicode": JobResult("j4", "ok", 0, {"ü": "✓"}, "ünïcödé ✓ <&>\n"),
}


@pytest.mark.parametrize("case", RESULTS, ids=str)
def test_results_round_trip(case):
    assert parse_result(build_result(RESULTS[case])) == RESULTS[case]


BAD_RESULTS = {
    "bad status": (f'<result {N} id="j" status="maybe"/>', "status"),
    "no status": (f'<result {N} id="j"/>', "status"),
    "bad exit": (f'<result {N} id="j" status="ok" exit="zero"/>', "exit"),
    "value not json": (f'<result {N} id="j" status="ok"><value>{{</value></result>', "not JSON"),
    "output too long": (f'<result {N} id="j" status="ok"><output>{"x" * (MAX_OUTPUT + 1)}</output></result>', "output"),
    "job not result": (f'<job {N} id="j" timeout="1"><script>true</script></job>', "expected <result"),
}


@pytest.mark.parametrize("case", BAD_RESULTS, ids=str)
def test_bad_results_raise_protocol_error(case):
    payload, reason = BAD_RESULTS[case]
    with pytest.raises(ProtocolError) as info:
        parse_result(payload)
    assert reason in info.value.reason


def test_build_refuses_what_the_peer_would_refuse():
    with pytest.raises(ProtocolError):
        build_job(ScriptJob("j", 1, "echo \x00"))
    with pytest.raises(ProtocolError):
        build_job(TaskletJob("j", 1, ("a,b",), {}))
    with pytest.raises(ProtocolError):
        build_result(JobResult("j", "ok", value=object()))


def test_output_is_clipped_and_made_xml_safe():
    result = JobResult("j", "ok", 0, None, "\x00\x1b[1m" + "é" * MAX_OUTPUT + "end")
    parsed = parse_result(build_result(result))
    assert len(parsed.output.encode()) <= MAX_OUTPUT
    assert parsed.output.startswith("\ufffd\ufffd[1mé") and parsed.output.endswith("end")
    assert "bytes cut" in parsed.output
    assert clip_output("short") == "short"


def test_build_is_namespaced_xml():
    root = ET.fromstring(build_job(ScriptJob("j", 2, "true")))
    assert root.tag == f"{{{NS}}}job" and root.get("timeout") == "2"
    value = ET.fromstring(build_result(JobResult("j", "ok", value={"a": [1]}))).find(f"{{{NS}}}value")
    assert json.loads(value.text) == {"a": [1]}


def _parses_or_protocol_error(parse, payload) -> None:
    try:
        parse(payload)
    except ProtocolError as exc:
        assert exc.reason


@given(st.binary(max_size=512))
def test_any_bytes_parse_or_raise_protocol_error(data):
    for parse in (parse_job, parse_result, parse_progress, parse_cancel):
        _parses_or_protocol_error(parse, data)


_XMLISH = st.lists(st.sampled_from(list('<>/="& ;x#[]{}:,.-1a\n') + [
    "job", "result", "tasklet", "script", "value", "output", "id", "timeout", "tags", "status",
    "exit", N, "&#0;", "&lt;"]), max_size=60).map("".join)


@given(_XMLISH)
def test_xml_like_text_parses_or_raises_protocol_error(text):
    _parses_or_protocol_error(parse_job, f"<job {N} id='j' timeout='1'>{text}</job>")
    _parses_or_protocol_error(parse_result, f"<result {N} id='j' status='ok'>{text}</result>")
    _parses_or_protocol_error(parse_job, text)
    _parses_or_protocol_error(parse_progress, f"<progress {N} id='j' seq='1'>{text}</progress>")
    _parses_or_protocol_error(parse_cancel, f"<cancel {N} {text}/>")


@given(st.text(max_size=200), st.text(alphabet="abc,.-_ ", max_size=20),
       st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3))
def test_built_jobs_parse_back_or_build_refuses(script, tags, params):
    for job in (ScriptJob("j", 1, script), TaskletJob("j", 1, tuple(tags.split(",")), params)):
        try:
            data = build_job(job)
        except ProtocolError:
            continue
        if isinstance(job, ScriptJob):  # XML 1.0 2.11: line ends arrive as LF
            job = ScriptJob("j", 1, script.replace("\r\n", "\n").replace("\r", "\n"))
        assert parse_job(data) == job


PROGRESS = {
    "a chunk": (f'<progress {N} id="j1.1" seq="1">line\n</progress>', Progress("j1.1", 1, "line\n")),
    "no output": (f'<progress {N} id="j" seq="12"/>', Progress("j", 12, "")),
}
BAD_PROGRESS = {
    "seq zero": (f'<progress {N} id="j" seq="0"/>', "seq"),
    "seq not a number": (f'<progress {N} id="j" seq="x"/>', "seq"),
    "no id": (f'<progress {N} seq="1"/>', "id"),
    "output too long": (f'<progress {N} id="j" seq="1">{"x" * (MAX_OUTPUT + 1)}</progress>', "longer"),
    "a result": (f'<result {N} id="j" status="ok"/>', "expected <progress"),
}


@pytest.mark.parametrize("case", PROGRESS, ids=str)
def test_progress_parses_and_round_trips(case):
    text, progress = PROGRESS[case]
    assert parse_progress(text) == progress == parse_progress(progress_element(progress))


@pytest.mark.parametrize("case", BAD_PROGRESS, ids=str)
def test_bad_progress_raises_protocol_error(case):
    payload, reason = BAD_PROGRESS[case]
    with pytest.raises(ProtocolError, match=reason):
        parse_progress(payload)


def test_cancel_names_a_job_and_cancelled_is_a_status():
    assert parse_cancel(cancel_element("j1.2")) == "j1.2"
    with pytest.raises(ProtocolError, match="id"):
        parse_cancel(f'<cancel {N}/>')
    with pytest.raises(ProtocolError):
        cancel_element("bad id")
    assert parse_result(build_result(JobResult("j", "cancelled", output="x"))).status == "cancelled"
