"""Runs without a broker, as `make run` serves them: the web process's workflow threads (workflows.background).

Starting a run answers 202 with the run still pending, whatever its steps; the work happens on the
threads, branches side by side, waits scheduled rather than slept.
"""
from __future__ import annotations

import pytest

from tests.web_process import request, web_process
from workflows import background
from workflows.models import Task

from .real_runs import (
    PARALLEL_WAITS,
    assert_ran_side_by_side,
    finished,
    review_then_follow_up,
    step,
    step_in,
    wait_for,
)


@pytest.fixture
def workflow_threads(transactional_db, settings):
    """The web process's workflow threads, on for one test (what they read must be committed)."""
    settings.TMWS_WORKFLOW_SWEEP_SECONDS = 1
    settings.TMWS_WORKFLOW_LEASE_SECONDS = 2
    background.start_if_no_broker()
    assert background.running()
    yield
    background.stop()


@pytest.fixture
def crew(make_namespace, make_agent):
    make_namespace("team")
    return {"lead": make_agent("lead-agent", "team"), "reviewer": make_agent("reviewer-agent", "team")}


def start(handle, steps, run_input=None, **workflow) -> str:
    created = handle.client.post("/api/v2/workflows", {"name": "No broker", "steps": steps, **workflow},
                                 format="json").json()
    response = handle.client.post(f"/api/v2/workflows/{created['id']}/run", {"input": run_input or {}},
                                  format="json")
    # then, for every run: answered before anything ran
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    return response.json()["id"]


@pytest.mark.slow
def test_parallel_waits_run_side_by_side_on_the_threads(workflow_threads, crew):
    # when
    run_id = start(crew["lead"], PARALLEL_WAITS, workflow_type="parallel")
    # then
    run = wait_for(lambda: finished(run_id), "the run to finish")
    assert run.status == "completed"
    assert_ran_side_by_side(run_id, "left", "right", each_seconds=2)


@pytest.mark.slow
def test_an_agent_step_on_the_threads(workflow_threads, crew):
    # given
    run_id = start(crew["lead"], review_then_follow_up({"agent_id": "reviewer-agent"}, retries=1,
                                                       retry_backoff_seconds=0), {"pr": "#5"})
    first = wait_for(lambda: step_in(run_id, "review", "waiting"), "the review task")
    # when: the first task fails, the retry's task completes
    crew["reviewer"].client.post(f"/api/v2/tasks/{first.task_id}/status", {"status": "failed"}, format="json")
    second = wait_for(lambda: (s := step_in(run_id, "review", "waiting")) and s.attempt == 2 and s, "the retry")
    crew["reviewer"].client.post(f"/api/v2/tasks/{second.task_id}/complete", {"result": {"verdict": "go"}},
                                 format="json")
    # then
    run = wait_for(lambda: finished(run_id), "the run to finish")
    assert run.status == "completed"
    assert step(run_id, "review").retries == 1
    assert Task.objects.filter(title="Merge #5: go").count() == 1


@pytest.mark.slow
def test_make_run_answers_202_at_once_and_runs_three_waits_side_by_side(transactional_db, make_namespace, make_agent,
                                                                        tmp_path):
    # given: the server exactly as `make run` starts it (gunicorn, no broker)
    make_namespace("team")
    lead = make_agent("lead-agent", "team")
    auth = {"Authorization": f"Bearer {lead.key}"}
    steps = [{"name": name, "action": "wait", "params": {"seconds": 3}} for name in ("a", "b", "c")]
    with web_process(tmp_path / "web.log", make_run=True, TMWS_WORKFLOW_SWEEP_SECONDS="1") as server:
        workflow = request("POST", f"{server.url}/api/v2/workflows", headers=auth,
                           json_body={"name": "Three waits", "workflow_type": "parallel", "steps": steps}).json()
        # when
        response = request("POST", f"{server.url}/api/v2/workflows/{workflow['id']}/run", headers=auth, json_body={})
        # then: answered before any step ran
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "pending"
        run_id = response.json()["id"]
        run = wait_for(lambda: finished(run_id), "the run to finish", lambda: server.log_path.read_text()[-3000:])
        assert "Traceback" not in server.log_path.read_text()
    assert run.status == "completed"
    a, b, c = (step(run_id, name) for name in ("a", "b", "c"))
    assert max(s.started_at for s in (a, b, c)) < min(s.finished_at for s in (a, b, c))
    assert_ran_side_by_side(run_id, "a", "c", each_seconds=3)
