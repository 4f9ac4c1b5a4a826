"""Runs on real Celery workers (subprocesses) on the local Redis: a queue of this module's own, the test database.

Marked `redis` and `slow`: two workers (one with the beat, which sweeps every second) serve the module;
the crash test starts workers of its own and kills one with SIGKILL mid-run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import kombu.pools
import pytest
import redis
from django.db import connection

from tests.conftest import redis_available, redis_url
from tests.site.test_celery_worker import database_url
from tmws_site.celery import app as celery_app
from workflows.models import Task, Workflow

from .real_runs import (
    PARALLEL_WAITS,
    assert_ran_side_by_side,
    finished,
    review_then_follow_up,
    step,
    step_in,
    wait_for,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]
BASE_DIR = Path(__file__).resolve().parents[2]
# Recovery is made quick through settings, not by waiting out the defaults.
WORKER_SETTINGS = {"TMWS_WORKFLOW_LEASE_SECONDS": "2", "TMWS_WORKFLOW_SWEEP_SECONDS": "1",
                   "TMWS_EMBEDDING_SWEEP_SECONDS": "0", "TMWS_EXPIRY_SWEEP_SECONDS": "0",
                   "TMWS_AUTO_CATEGORISE_SECONDS": "0"}


@dataclass
class Workers:
    """Celery workers reading one queue of their own, pointed at the test database."""

    queue: str
    folder: Path
    started: list[tuple[subprocess.Popen, Path]] = field(default_factory=list)

    def start(self, name: str, *, beat: bool = False) -> subprocess.Popen:
        env = {**os.environ, **WORKER_SETTINGS, "DEBUG": "1", "DATABASE_URL": database_url(connection.settings_dict),
               "CELERY_BROKER_URL": redis_url(), "TMWS_CELERY_QUEUE": self.queue, "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        log_path = self.folder / f"{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "tmws_site", "worker", "--pool=solo", "--loglevel=INFO",
                   "-Q", self.queue, "-n", f"{name}-{self.queue}@%h", "--without-gossip", "--without-mingle",
                   "--without-heartbeat"]
        if beat:
            command += ["--beat", "-s", str(self.folder / f"{name}-beat-schedule")]
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started.append((process, log_path))
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}" for _, path in self.started)

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        client = redis.Redis.from_url(redis_url())
        client.delete(self.queue, f"_kombu.binding.{self.queue}", f"_kombu.binding_permanent.{self.queue}")


def _require_redis() -> None:
    if not redis_available():
        if os.environ.get("TMWS_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required (TMWS_REQUIRE_REDIS=1) but not reachable at {redis_url()}")
        pytest.skip(f"Redis not reachable at {redis_url()}")


def _workers(tmp_path_factory, django_db_blocker) -> Workers:
    _require_redis()
    with django_db_blocker.unblock():
        connection.ensure_connection()
    return Workers(f"tmws-workflows-{uuid.uuid4().hex[:12]}", tmp_path_factory.mktemp("workflow-workers"))


@pytest.fixture(scope="module")
def module_workers(django_db_setup, django_db_blocker, tmp_path_factory):
    """Two workers for the module; the first runs the beat (the sweep)."""
    workers = _workers(tmp_path_factory, django_db_blocker)
    with django_db_blocker.unblock():
        workers.start("wf-one", beat=True)
        workers.start("wf-two")
    try:
        yield workers
    finally:
        workers.stop_all()


def _send_to(queue: str, settings) -> None:
    """Send this process's tasks to `queue` on Redis instead of running them in-process."""
    settings.CELERY_BROKER_URL = redis_url()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.update(broker_url=redis_url(), task_always_eager=False, task_default_queue=queue)
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


@pytest.fixture
def on_workers(module_workers, transactional_db, settings):
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager", "task_default_queue")}
    _send_to(module_workers.queue, settings)
    yield module_workers
    celery_app.conf.update(saved)
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


@pytest.fixture
def crew(make_namespace, make_agent):
    make_namespace("team")
    return {"lead": make_agent("lead-agent", "team"), "reviewer": make_agent("reviewer-agent", "team")}


def start(handle, steps, run_input=None, **workflow) -> tuple[dict, str]:
    created = handle.client.post("/api/v2/workflows", {"name": "On workers", "steps": steps, **workflow},
                                 format="json")
    assert created.status_code == 201, created.content
    response = handle.client.post(f"/api/v2/workflows/{created.json()['id']}/run", {"input": run_input or {}},
                                  format="json")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    return created.json(), response.json()["id"]


def test_parallel_waits_run_side_by_side_on_workers(on_workers, crew):
    # when
    _, run_id = start(crew["lead"], PARALLEL_WAITS, workflow_type="parallel")
    # then
    run = wait_for(lambda: finished(run_id), "the run to finish", on_workers.logs)
    assert run.status == "completed", on_workers.logs()
    assert_ran_side_by_side(run_id, "left", "right", each_seconds=2)
    assert step(run_id, "join").started_at >= max(step(run_id, "left").finished_at, step(run_id, "right").finished_at)


def test_an_agent_step_completed_by_another_agent_carries_its_result_on_workers(on_workers, crew):
    # given
    _, run_id = start(crew["lead"], review_then_follow_up({"agent_id": "reviewer-agent"}), {"pr": "#42"})
    waiting = wait_for(lambda: step_in(run_id, "review", "waiting"), "the review task", on_workers.logs)
    # when: the reviewer finds the task among its own and completes it
    mine = crew["reviewer"].client.get("/api/v2/tasks", {"assigned_agent_id": "reviewer-agent"}).json()["results"]
    assert [task["id"] for task in mine] == [str(waiting.task_id)]
    done = crew["reviewer"].client.post(f"/api/v2/tasks/{waiting.task_id}/complete",
                                        {"result": {"verdict": "approved"}}, format="json")
    assert done.status_code == 200, done.content
    # then
    run = wait_for(lambda: finished(run_id), "the run to finish", on_workers.logs)
    assert run.status == "completed", on_workers.logs()
    assert run.output["review"]["result"] == {"verdict": "approved"}
    assert Task.objects.get(title="Merge #42: approved").created_by.agent_id == "lead-agent"


def test_a_step_retried_then_succeeding_on_workers(on_workers, crew):
    # given
    _, run_id = start(crew["lead"], review_then_follow_up({"agent_id": "reviewer-agent"}, retries=1,
                                                          retry_backoff_seconds=0.5), {"pr": "#7"})
    first = wait_for(lambda: step_in(run_id, "review", "waiting"), "the first task", on_workers.logs)
    # when: the first task fails, the retry's task completes
    crew["reviewer"].client.post(f"/api/v2/tasks/{first.task_id}/status", {"status": "failed", "error": "flaky"},
                                 format="json")
    second = wait_for(lambda: (s := step_in(run_id, "review", "waiting")) and s.attempt == 2 and s,
                      "the retry's task", on_workers.logs)
    assert second.task_id != first.task_id
    crew["reviewer"].client.post(f"/api/v2/tasks/{second.task_id}/complete", {"result": {"verdict": "fine"}},
                                 format="json")
    # then
    run = wait_for(lambda: finished(run_id), "the run to finish", on_workers.logs)
    assert run.status == "completed", on_workers.logs()
    review = step(run_id, "review")
    assert (review.attempt, review.retries, review.error) == (2, 1, "")
    assert Task.objects.filter(title="Merge #7: fine").count() == 1


def test_a_step_timing_out_on_workers(on_workers, crew):
    # when: nobody answers within the second
    _, run_id = start(crew["lead"], review_then_follow_up({"agent_id": "reviewer-agent", "timeout_seconds": 1}),
                      {"pr": "#1"})
    # then
    run = wait_for(lambda: finished(run_id), "the run to time out", on_workers.logs)
    assert (run.status, run.failed_step_index) == ("failed", 0)
    assert "timed out" in step(run_id, "review").error
    assert step(run_id, "review").task.status == "cancelled"
    assert step(run_id, "follow-up").status == "skipped"


def test_cancelling_a_run_closes_its_open_tasks_on_workers(on_workers, crew):
    # given: two agent steps waiting side by side
    workflow, run_id = start(crew["lead"], [
        {"name": "one", "action": "agent_task", "params": {"title": "One", "agent_id": "reviewer-agent"}},
        {"name": "two", "action": "agent_task", "params": {"title": "Two", "agent_id": "reviewer-agent"}},
    ], workflow_type="parallel")
    wait_for(lambda: step_in(run_id, "one", "waiting") and step_in(run_id, "two", "waiting"), "both tasks",
             on_workers.logs)
    # when
    response = crew["lead"].client.post(f"/api/v2/workflows/{workflow['id']}/runs/{run_id}/cancel")
    # then
    assert response.status_code == 200, response.content
    assert sorted(Task.objects.values_list("status", flat=True)) == ["cancelled", "cancelled"]
    assert {step(run_id, name).status for name in ("one", "two")} == {"cancelled"}


@pytest.fixture
def own_workers(django_db_setup, django_db_blocker, tmp_path_factory, transactional_db, settings):
    workers = _workers(tmp_path_factory, django_db_blocker)
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager", "task_default_queue")}
    _send_to(workers.queue, settings)
    try:
        yield workers
    finally:
        workers.stop_all()
        celery_app.conf.update(saved)
        kombu.pools.reset()
        celery_app._pool = None
        celery_app.__dict__.pop("amqp", None)


def test_a_worker_killed_mid_run_leaves_a_run_that_finishes_once(own_workers, crew):
    # given: one worker running a run that creates a task, waits, and creates another
    doomed = own_workers.start("doomed")
    _, run_id = start(crew["lead"], [
        {"name": "before", "action": "create_task", "params": {"title": "Before the crash"}},
        {"name": "pause", "action": "wait", "params": {"seconds": 2}},
        {"name": "after", "action": "create_task", "params": {"title": "After the crash"}},
    ])
    wait_for(lambda: step_in(run_id, "pause", "waiting"), "the run to be mid-way", own_workers.logs, interval=0.05)
    # when: the worker dies holding the wait's message, and another worker (with the sweep) takes over
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    assert step(run_id, "after").status == "pending"
    own_workers.start("rescuer", beat=True)
    # then: the run finishes, each step's effect applied once
    run = wait_for(lambda: finished(run_id), "the run to finish after the crash", own_workers.logs)
    assert run.status == "completed", own_workers.logs()
    assert [step(run_id, name).attempt for name in ("before", "pause", "after")] == [1, 1, 1]
    assert sorted(Task.objects.values_list("title", flat=True)) == ["After the crash", "Before the crash"]
    assert Workflow.objects.get().execution_count == 1
