"""``testing.fake.runner``: the fake's tasks and the callbacks they schedule, on a held clock."""

from __future__ import annotations

import json

from topview_callbacks.testing import Chaos, FakeTaskRunner, ScheduledCallback

NOTICE_URL = "http://127.0.0.1:8000/topview/notice/"


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_timed_task_runs_then_its_callback_leaves_after_the_delay():
    clock = ManualClock()
    runner = FakeTaskRunner(Chaos(duration=(1, 1), delay=(2, 2)), clock=clock)
    task = runner.submit("VOICE_CLONE", {"noticeUrl": NOTICE_URL}, "uid-1")
    assert task.state(clock()) == "init"
    clock.now = 0.5
    assert task.state(clock()) == "running"
    clock.now = 1.0
    assert runner.pop_due() == [] and not runner.idle()
    clock.now = 3.0
    (callback,) = runner.pop_due()
    assert runner.idle()
    assert isinstance(callback, ScheduledCallback)
    assert (callback.url, callback.uid, callback.copy) == (NOTICE_URL, "uid-1", 1)
    payload = callback.payload
    assert list(payload) == ["uuid", "bizType", "taskId", "status", "errorMsg", "result"]
    assert (payload["uuid"], payload["status"], payload["errorMsg"]) == (
        task.notice_uuid,
        "success",
        "",
    )
    assert json.loads(payload["result"]) == runner.view(task)


def test_a_failed_task_says_why_in_its_callback():
    runner = FakeTaskRunner(clock=ManualClock())
    task = runner.submit("SCRAPER", {"noticeUrl": NOTICE_URL}, "uid-1")
    runner.finish(task.task_id, "fail")
    (callback,) = runner.pop_due()
    result = json.loads(callback.payload["result"])
    assert callback.payload["status"] == result["status"] == "fail"
    assert callback.payload["errorMsg"] == result["errorMsg"] != ""


def test_the_same_seed_drops_and_duplicates_the_same_callbacks():
    def run(seed: int) -> tuple[dict[str, int], list[int]]:
        runner = FakeTaskRunner(
            duration=(0, 0), drop=0.4, duplicate=0.4, seed=seed, clock=ManualClock()
        )
        for _ in range(30):
            runner.submit("VOICE_CLONE", {"noticeUrl": NOTICE_URL}, "uid-1")
        return runner.stats, [callback.copy for callback in runner.pop_due()]

    stats, copies = run(3)
    assert (stats, copies) == run(3)
    assert 0 < stats["dropped"] < 30 and stats["duplicated"] > 0
    assert len(copies) == 30 - stats["dropped"] + stats["duplicated"]
