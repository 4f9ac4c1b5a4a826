"""A real Celery worker, on the local Redis, executes a workflow run started through the API."""
from __future__ import annotations

import time

import pytest

from tests.site.test_celery_worker import broker, worker  # noqa: F401  (fixtures)
from workflows.models import Task

FINISH_WAIT_SECONDS = 180  # a bound on the wait, not a performance expectation


@pytest.mark.redis
@pytest.mark.slow
def test_a_worker_executes_a_run_as_the_agent_that_started_it(worker, make_namespace, make_agent):  # noqa: F811
    # given
    process, log_path = worker
    make_namespace("team")
    make_namespace("elsewhere")
    handle = make_agent("workflow-worker-agent", "team")
    workflow = handle.client.post("/api/v2/workflows", {"name": "Live", "steps": [
        {"name": "make", "action": "create_task", "params": {"title": "Made by {{ input.who }}"}},
        {"name": "start", "action": "update_task_status", "params": {"task_id": "{{ steps.make.id }}",
                                                                     "status": "in_progress"}},
        {"name": "leak", "action": "store_memory", "params": {"content": "x", "namespace": "elsewhere"}},
    ]}, format="json").json()
    # when
    response = handle.client.post(f"/api/v2/workflows/{workflow['id']}/run", {"input": {"who": "a worker"}},
                                  format="json")
    # then: answered at once, executed later by the worker process
    assert response.status_code == 202, response.content
    run_url = f"/api/v2/workflows/{workflow['id']}/runs/{response.json()['id']}"
    run = response.json()
    deadline = time.monotonic() + FINISH_WAIT_SECONDS
    while run["status"] in ("pending", "running") and time.monotonic() < deadline:
        assert process.poll() is None, f"worker exited early:\n{log_path.read_text()}"
        time.sleep(0.5)
        run = handle.client.get(run_url).json()
    assert run["status"] == "failed", f"run is {run['status']}; worker log:\n{log_path.read_text()}"
    assert [(s["name"], s["status"]) for s in run["step_runs"]] == [
        ("make", "completed"), ("start", "completed"), ("leak", "failed")]
    assert run["failed_step_index"] == 2
    task = Task.objects.get(title="Made by a worker")
    assert (task.status, task.created_by.agent_id) == ("in_progress", "workflow-worker-agent")
