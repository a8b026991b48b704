"""The jobs component's wiring: what it needs, and the policy it takes from [jobs]."""

import pytest

from appliance.components import Runtime
from appliance.components.jobs import build, policy_of
from appliance.config import ConfigError, validate
from appliance.jobs.core import Policy


@pytest.mark.parametrize("tables,problem", [
    ({"osis": {"enabled": True}}, "jobs.enabled: the workflow engine needs [xmpp] enabled"),
    ({"xmpp": {"enabled": True}}, "jobs.enabled: the workflow engine needs [osis] enabled"),
])
def test_the_engine_needs_osis_and_xmpp(tables, problem):
    with pytest.raises(ConfigError) as info:
        validate({"jobs": {"enabled": True}, **tables})
    assert info.value.problems == [problem]


async def test_it_does_not_start_without_the_object_store():
    cfg = validate({"jobs": {"enabled": True}, "osis": {"enabled": True}, "xmpp": {"enabled": True}})
    with pytest.raises(RuntimeError, match="object store"):
        await build(cfg, Runtime(status=dict)).start()


def test_the_policy_comes_from_the_jobs_table():
    cfg = validate({"jobs": {"attempts": 4, "retry_delay": 2, "queue_timeout": 60}})
    assert policy_of(cfg) == Policy(attempts=4, retry_delay=2.0, queue_timeout=60.0)
    with pytest.raises(ConfigError, match="jobs.attempts"):
        validate({"jobs": {"attempts": 0}})
