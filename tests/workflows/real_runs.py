"""What the tests of runs on real workers and background threads share: workflows, and waiting on recorded state.

These tests wait for the database to reach a state (bounded waits, not performance expectations) and then
assert on what the engine recorded, such as when each step started and ended.
"""
from __future__ import annotations

import time
from datetime import timedelta

from workflows.models import StepRun, WorkflowRun

SETTLE_SECONDS = 120  # a bound on a wait, not a performance expectation

PARALLEL_WAITS = [
    {"name": "left", "action": "wait", "params": {"seconds": 2}},
    {"name": "right", "action": "wait", "params": {"seconds": 2}},
    {"name": "join", "action": "create_task", "params": {"title": "Both waited"}, "depends_on": ["left", "right"]},
]


def review_then_follow_up(assignee: dict, **policy) -> list[dict]:
    return [
        {"name": "review", "action": "agent_task",
         "params": {"title": "Review {{ input.pr }}", **assignee}, **policy},
        {"name": "follow-up", "action": "create_task",
         "params": {"title": "Merge {{ input.pr }}: {{ steps.review.result.verdict }}"}},
    ]


def wait_for(predicate, what: str, logs=lambda: "", timeout: float = SETTLE_SECONDS, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def run_status(run_id) -> str:
    return WorkflowRun.objects.filter(pk=run_id).values_list("status", flat=True).first()


def finished(run_id) -> WorkflowRun | None:
    run = WorkflowRun.objects.filter(pk=run_id).first()
    return run if run is not None and run.status not in ("pending", "running") else None


def step(run_id, name: str) -> StepRun:
    return StepRun.objects.select_related("task").get(run_id=run_id, name=name)


def step_in(run_id, name: str, status: str) -> StepRun | None:
    return StepRun.objects.select_related("task").filter(run_id=run_id, name=name, status=status).first()


def assert_ran_side_by_side(run_id, first: str, second: str, each_seconds: float) -> None:
    """Both steps started before either ended, and together they took less than one after the other would."""
    a, b = step(run_id, first), step(run_id, second)
    assert a.status == b.status == "completed", (a.status, b.status)
    assert a.started_at < b.finished_at and b.started_at < a.finished_at, (a.started_at, a.finished_at,
                                                                           b.started_at, b.finished_at)
    span = max(a.finished_at, b.finished_at) - min(a.started_at, b.started_at)
    assert timedelta(seconds=each_seconds) <= span < timedelta(seconds=2 * each_seconds), span
