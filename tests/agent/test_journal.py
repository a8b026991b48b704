"""The agent's journal of recent jobs: what it answers, what it forgets, what survives."""

from agent.journal import INTERRUPTED, Journal
from agent.protocol import JobResult


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_running_job_has_no_result_and_a_finished_one_has_its_own():
    journal = Journal()
    assert journal.result("j") is None
    journal.begin("j")
    assert journal.result("j") == JobResult("j", "failed", output=INTERRUPTED)
    journal.done("j", JobResult("j", "ok", 0, [1], "out"))
    assert journal.result("j") == JobResult("j", "ok", 0, [1], "out")


def test_results_are_forgotten_after_keep_seconds_and_past_the_limit():
    clock = Clock()
    journal = Journal(keep=60, limit=3, clock=clock)
    for name in "abc":
        journal.begin(name)
        journal.done(name, JobResult(name, "ok"))
    clock.now += 30
    journal.begin("d")  # over the limit: the oldest goes
    assert [journal.result(n) is not None for n in "abcd"] == [False, True, True, True]
    clock.now += 61
    journal.begin("e")  # b and c finished more than 60 s ago; d still runs
    assert [journal.result(n) is not None for n in "bcde"] == [False, False, True, True]


def test_records_survive_the_agent_and_an_unfinished_job_reads_as_interrupted(tmp_path):
    first = Journal(tmp_path)
    first.begin("done")
    first.done("done", JobResult("done", "failed", 3, None, "boom"))
    first.begin("cut")  # the agent stops here
    second = Journal(tmp_path)
    assert second.result("done") == JobResult("done", "failed", 3, None, "boom")
    assert second.result("cut").output == INTERRUPTED
    assert len(second) == 2


def test_damaged_records_are_skipped(tmp_path):
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "noid.json").write_text('{"id": "bad id!", "started": 1}')
    (tmp_path / "ok.json").write_text('{"id": "ok", "started": 1, "finished": 2, '
                                      '"result": {"id": "ok", "status": "ok", "exit": 0, "value": null, "output": ""}}')
    journal = Journal(tmp_path, keep=1e12)
    assert len(journal) == 1 and journal.result("ok").status == "ok"
