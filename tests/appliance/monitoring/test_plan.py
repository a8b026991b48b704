"""The schedule: agents spread over the interval at fixed phases, one poll each at a time."""

from collections import Counter

import pytest

from appliance.monitoring.plan import Plan

JIDS = [f"node-{i:04d}@rack.test" for i in range(1000)]


def test_a_thousand_agents_are_spread_over_the_interval():
    plan = Plan(60)
    per_second = Counter(int(plan.phase(jid)) for jid in JIDS)
    assert len(per_second) >= 55  # nearly every second of the minute has some
    assert max(per_second.values()) <= 40  # 16.7 on average; never a stampede
    per_millisecond = Counter(int(plan.phase(jid) * 1000) for jid in JIDS)
    assert max(per_millisecond.values()) <= 2


def test_an_agent_keeps_its_phase_and_is_due_once_per_interval():
    plan = Plan(10)
    jid = JIDS[0]
    phase = plan.phase(jid)
    assert Plan(10).phase(jid) == phase and 0 <= phase < 10  # the same after a restart
    plan.update([jid], now=1000.0)
    polls = []
    for tick in range(0, 400):  # 40 s in steps of 0.1 s
        now = 1000.0 + tick / 10
        start, skipped = plan.due(now, busy=())
        polls += [now for _ in start]
        assert skipped == 0
    assert len(polls) == 4
    assert all(abs((p - phase) % 10) < 0.11 for p in polls)  # at its phase, to the tick


@pytest.mark.parametrize("busy, started, skipped", [((), 1, 0), (("a@x",), 0, 1)], ids=["idle", "busy"])
def test_a_slot_that_comes_while_the_agent_is_busy_is_skipped(busy, started, skipped):
    plan = Plan(5)
    plan.update(["a@x"], now=0.0)
    slot = plan.next["a@x"]
    start, missed = plan.due(slot, busy)
    assert (len(start), missed) == (started, skipped)
    assert plan.next["a@x"] == slot + 5  # either way, the next one is one interval on


def test_agents_that_go_offline_are_dropped_and_new_ones_added():
    plan = Plan(5)
    plan.update(["a@x", "b@x"], now=0.0)
    assert plan.update(["b@x", "c@x"], now=1.0) == ["a@x"]
    assert set(plan.next) == {"b@x", "c@x"}
    assert all(1.0 < slot <= 6.0 for slot in plan.next.values())  # within one interval
    assert plan.next_due() == min(plan.next.values())
    assert Plan(5).next_due() is None
