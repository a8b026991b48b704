"""What a monitor tasklet may return: good samples are kept, garbage is named and dropped."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.monitoring.samples import (
    MAX_SAMPLES,
    Garbage,
    check_labels,
    check_metric,
    parse_result,
    sample,
    series_guid,
)
from appliance.osis.schema import GUID

AGENT = "node1@rack.test"

GOOD = {
    "plain": ({"metric": "node_load1", "value": 0.5}, ("node_load1", 0.5, {})),
    "integer": ({"metric": "up", "value": 3}, ("up", 3.0, {})),
    "labels": ({"metric": "fs:avail", "value": 1e9, "labels": {"mountpoint": "/"}},
               ("fs:avail", 1e9, {"mountpoint": "/"})),
    "negative": ({"metric": "temp_celsius", "value": -4.5, "labels": {}}, ("temp_celsius", -4.5, {})),
}

BAD = {
    "not an object": ("node_load1", "is an object"),
    "no metric": ({"value": 1}, "is an object"),
    "unknown key": ({"metric": "a", "value": 1, "unit": "s"}, "is an object"),
    "space in name": ({"metric": "node load", "value": 1}, "not a Prometheus metric name"),
    "digit first": ({"metric": "1st", "value": 1}, "not a Prometheus metric name"),
    "name too long": ({"metric": "a" * 201, "value": 1}, "not a Prometheus metric name"),
    "our namespace": ({"metric": "appliance_component_up", "value": 1}, "own namespace"),
    "process namespace": ({"metric": "process_cpu_seconds_total", "value": 1}, "own namespace"),
    "text value": ({"metric": "a", "value": "1"}, "not a finite number"),
    "bool value": ({"metric": "a", "value": True}, "not a finite number"),
    "no value": ({"metric": "a"}, "not a finite number"),
    "infinite": ({"metric": "a", "value": float("inf")}, "not a finite number"),
    "nan": ({"metric": "a", "value": float("nan")}, "not a finite number"),
    "labels a list": ({"metric": "a", "value": 1, "labels": ["x"]}, "labels must be an object"),
    "agent label": ({"metric": "a", "value": 1, "labels": {"agent": "me"}}, "label name 'agent'"),
    "reserved label": ({"metric": "a", "value": 1, "labels": {"__name__": "b"}}, "label name '__name__'"),
    "bad label name": ({"metric": "a", "value": 1, "labels": {"a-b": "c"}}, "label name 'a-b'"),
    "number label": ({"metric": "a", "value": 1, "labels": {"cpu": 0}}, "is not text"),
    "many labels": ({"metric": "a", "value": 1, "labels": {f"l{i}": "x" for i in range(17)}},
                    "at most 16"),
}


@pytest.mark.parametrize("item, expected", GOOD.values(), ids=GOOD.keys())
def test_good_samples_become_monitor_samples(item, expected):
    got = sample(AGENT, item, now=1700000000.25)
    assert (got.metric, got.value, got.labels) == expected
    assert (got.agent, got.timestamp) == (AGENT, 1700000000.25)
    assert got.guid == series_guid(AGENT, got.metric, got.labels) and GUID.fullmatch(got.guid)


@pytest.mark.parametrize("item, reason", BAD.values(), ids=BAD.keys())
def test_garbage_is_refused_with_its_reason(item, reason):
    with pytest.raises(Garbage, match=reason):
        sample(AGENT, item, now=1.0)


def test_one_series_one_id_whatever_the_label_order():
    a = series_guid(AGENT, "m", {"x": "1", "y": "2"})
    assert a == series_guid(AGENT, "m", {"y": "2", "x": "1"})
    assert len({a, series_guid(AGENT, "m", {"x": "1"}), series_guid("other@rack.test", "m", {"x": "1", "y": "2"}),
                series_guid(AGENT, "n", {"x": "1", "y": "2"})}) == 4


def result(name="t", status="ok", value=None, error=None):
    return {"name": name, "status": status, "value": value, "output": "", "error": error, "duration": 0.1}


def test_a_job_result_gives_the_good_samples_the_garbage_and_the_failures():
    value = [result("good", value=[{"metric": "a", "value": 1}, {"metric": "bad name", "value": 1}]),
             result("dict", value={"metric": "a", "value": 1}),
             result("broken", status="failed", error="Traceback ...\nRuntimeError: unplugged\n"),
             result("slow", status="timed_out", error="killed after 30 s"),
             "not a result"]
    parsed = parse_result(AGENT, value, now=5.0)
    assert [(s.metric, s.value) for s in parsed.samples] == [("a", 1.0)]
    assert [name for name, _ in parsed.rejected] == ["good", "dict", "-"]
    assert parsed.failed == [("broken", "failed", "RuntimeError: unplugged"),
                             ("slow", "timed_out", "killed after 30 s")]


@pytest.mark.parametrize("value", [None, "text", {"a": 1}, 3], ids=repr)
def test_a_job_value_that_is_not_a_list_is_garbage(value):
    parsed = parse_result(AGENT, value, now=1.0)
    assert parsed.samples == [] and len(parsed.rejected) == 1


def test_too_many_samples_are_cut_and_counted():
    items = [{"metric": "m", "value": 1, "labels": {"i": str(i)}} for i in range(MAX_SAMPLES + 5)]
    parsed = parse_result(AGENT, [result(value=items)], now=1.0)
    assert len(parsed.samples) == MAX_SAMPLES and len(parsed.rejected) == 1


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)
ITEMS = st.lists(st.fixed_dictionaries({"metric": st.text(max_size=12) | JSON, "value": JSON},
                                       optional={"labels": st.dictionaries(st.text(max_size=6), JSON, max_size=3)}),
                 max_size=5)


@given(st.lists(st.fixed_dictionaries({"name": st.text(max_size=5), "status": st.sampled_from(["ok", "failed"]),
                                       "value": ITEMS | JSON}), max_size=4) | JSON)
def test_any_value_parses_into_samples_that_can_be_exported(value):
    parsed = parse_result(AGENT, value, now=1.0)
    for got in parsed.samples:
        assert check_metric(got.metric) == got.metric and check_labels(got.labels) == got.labels
        json.dumps(got.value, allow_nan=False)
