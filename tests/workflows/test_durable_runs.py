"""Durable runs in one process: agent steps, retries, timeouts, on_failure, cancellation, claims and the sweep.

The engine's work runs in the test's thread here (no broker): each message is a call, in the order it
falls due. tests/workflows/test_real_workers.py runs the same on Celery workers.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from memories.models import Memory
from workflows import dispatch, engine, runs
from workflows.contracts import StartRun
from workflows.models import StepRun, Task, WorkflowRun


def step_states(run) -> list[tuple]:
    return list(StepRun.objects.filter(run=run).order_by("index").values_list("name", "status", "attempt"))


@pytest.fixture
def settle(django_capture_on_commit_callbacks):
    """Do something and then every piece of engine work it sends (the work it sends in turn included)."""

    def act(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)

    return act


def review_steps(assignee: dict, **policy) -> list[dict]:
    return [
        {"name": "review", "action": "agent_task",
         "params": {"title": "Review {{ input.pr }}", "description": "Say approve or reject.", **assignee}, **policy},
        {"name": "note", "action": "store_memory",
         "params": {"content": "PR {{ input.pr }}: {{ steps.review.result.verdict }}", "access_level": "shared"}},
    ]


@pytest.mark.django_db
def test_an_agent_step_waits_for_the_task_and_carries_its_result_forward(team, make_workflow, run_now, settle):
    # given: the owner's workflow asks the member to review
    owner, member = team["owner"], team["member"]
    workflow = make_workflow(owner, review_steps({"agent_id": "member-agent"}), status="active")
    # when
    run = run_now(owner.agent, workflow, {"pr": "#42"})
    # then: the run waits, holding nothing but a task the member sees
    assert run.status == "running"
    assert step_states(run) == [("review", "waiting", 1), ("note", "pending", 0)]
    listed = member.client.get("/api/v2/tasks", {"assigned_agent_id": "member-agent"}).json()["results"]
    assert [(task["title"], task["status"], task["created_by"]) for task in listed] == [
        ("Review #42", "pending", "owner-agent")]
    task_id = listed[0]["id"]
    assert listed[0]["metadata"]["workflow"] == {"run_id": str(run.pk), "step": "review"}
    # when: the member completes the task through the API
    response = settle(member.client.post, f"/api/v2/tasks/{task_id}/complete", {"result": {"verdict": "approve"}},
                      format="json")
    # then: the result goes into the next step, and the run completes
    assert response.status_code == 200, response.content
    run.refresh_from_db()
    assert (run.status, run.error) == ("completed", "")
    assert step_states(run) == [("review", "completed", 1), ("note", "completed", 1)]
    assert run.output["review"] == {"task_id": task_id, "status": "completed", "result": {"verdict": "approve"},
                                    "assigned_agent_id": "member-agent"}
    memory = Memory.objects.get(pk=run.output["note"]["id"])
    assert (memory.content, memory.agent_id) == ("PR #42: approve", owner.agent.pk)


@pytest.mark.django_db
def test_capability_matching_picks_the_least_busy_member_of_the_workflows_namespace(
        team, make_agent, make_workflow, make_task, run_now):
    # given: two reviewers in `team`, one already busy, and a better-matching reviewer elsewhere
    busy = make_agent("busy-reviewer", "team", capabilities={"review": True, "languages": ["python", "go"]})
    make_agent("free-reviewer", "team", capabilities={"review": True, "languages": ["python"]})
    make_agent("outside-reviewer", "other", capabilities={"review": True, "languages": ["python"]})
    make_agent("idle-writer", "team", capabilities={"writing": True})
    make_task(busy, "Already on it", assigned_agent_id="busy-reviewer")
    workflow = make_workflow(team["owner"], review_steps({"capability": {"review": True, "languages": ["python"]}}))
    # when
    run = run_now(team["owner"].agent, workflow, {"pr": "#7"})
    # then
    task = StepRun.objects.get(run=run, name="review").task
    assert (task.assigned_agent.agent_id, task.namespace.namespace) == ("free-reviewer", "team")


@pytest.mark.django_db
def test_capability_matching_never_picks_an_agent_outside_the_workflows_namespace(
        team, make_agent, make_workflow, run_now):
    # given: the only agent with the capability lives in another namespace
    make_agent("outside-reviewer", "other", capabilities={"review": True})
    workflow = make_workflow(team["owner"], review_steps({"capability": {"review": True}}))
    # when
    run = run_now(team["owner"].agent, workflow, {"pr": "#7"})
    # then
    assert (run.status, run.failed_step_index) == ("failed", 0)
    assert "No active agent of namespace 'team' has the capabilities" in run.error
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_a_failed_task_is_retried_with_a_new_task_and_the_step_then_succeeds(team, make_workflow, run_now, settle):
    # given
    owner, member = team["owner"], team["member"]
    workflow = make_workflow(owner, review_steps({"agent_id": "member-agent"}, retries=2, retry_backoff_seconds=0))
    run = run_now(owner.agent, workflow, {"pr": "#9"})
    first = StepRun.objects.get(run=run, name="review").task
    # when: the first task fails, the second completes
    response = settle(member.client.post, f"/api/v2/tasks/{first.pk}/status",
                      {"status": "failed", "error": "CI was red"}, format="json")
    assert response.status_code == 200, response.content
    retried = StepRun.objects.get(run=run, name="review")
    assert (retried.status, retried.attempt, retried.error) == ("waiting", 2, "The task ended failed: CI was red")
    assert retried.task_id != first.pk
    settle(member.client.post, f"/api/v2/tasks/{retried.task_id}/complete", {"result": {"verdict": "ok"}},
           format="json")
    # then
    run.refresh_from_db()
    assert run.status == "completed"
    step = StepRun.objects.get(run=run, name="review")
    assert (step.status, step.attempt, step.retries, step.error) == ("completed", 2, 1, "")
    assert [attempt["error"] for attempt in step.metadata["attempts"]] == ["The task ended failed: CI was red"]
    assert sorted(Task.objects.values_list("status", flat=True)) == ["completed", "failed"]


@pytest.mark.django_db
def test_a_step_that_times_out_cancels_its_task_and_fails_the_run(team, make_workflow, run_now):
    # given: nobody completes the task within its second
    workflow = make_workflow(team["owner"], review_steps({"agent_id": "member-agent", "timeout_seconds": 1}))
    # when
    run = run_now(team["owner"].agent, workflow, {"pr": "#1"})
    # then
    assert (run.status, run.failed_step_index) == ("failed", 0)
    assert run.error.startswith("Step 'review' failed: The step timed out")
    assert step_states(run) == [("review", "failed", 1), ("note", "skipped", 0)]
    task = Task.objects.get()
    assert (task.status, task.error) == ("cancelled", "The workflow step that opened this task timed out.")


@pytest.mark.django_db
def test_on_failure_continue_keeps_the_error_and_the_run_goes_on(team, make_workflow, run_now):
    # given
    workflow = make_workflow(team["owner"], [
        {"name": "leak", "action": "store_memory", "params": {"content": "x", "namespace": "other"},
         "on_failure": "continue", "retries": 1, "retry_backoff_seconds": 0},
        {"name": "after", "action": "create_task", "params": {"title": "Still made"}},
        {"name": "uses-leak", "action": "create_task", "params": {"title": "{{ steps.leak.id }}"}},
        {"name": "on-failure", "action": "create_task", "params": {"title": "Report the leak"},
         "when": {"step": "leak", "status": "failed"}},
    ], workflow_type="parallel")
    # when
    run = run_now(team["owner"].agent, workflow)
    # then
    assert (run.status, run.error) == ("completed", "")
    assert step_states(run) == [("leak", "failed", 2), ("after", "completed", 1), ("uses-leak", "skipped", 0),
                                ("on-failure", "completed", 1)]
    leak = StepRun.objects.get(run=run, name="leak")
    assert leak.error == "Agent 'owner-agent' is not a member of namespace 'other'. (field: namespace)"
    assert sorted(Task.objects.values_list("title", flat=True)) == ["Report the leak", "Still made"]


@pytest.mark.django_db
def test_cancelling_a_run_closes_the_tasks_it_opened(team, make_workflow, run_now, settle):
    # given: two reviews waiting side by side, one already done
    owner, member = team["owner"], team["member"]
    workflow = make_workflow(owner, [
        {"name": "first", "action": "agent_task", "params": {"title": "First", "agent_id": "member-agent"}},
        {"name": "second", "action": "agent_task", "params": {"title": "Second", "agent_id": "member-agent"}},
        {"name": "after", "action": "create_task", "params": {"title": "Never"}, "depends_on": ["first", "second"]},
    ], workflow_type="parallel")
    run = run_now(owner.agent, workflow)
    done = Task.objects.get(title="First")
    settle(member.client.post, f"/api/v2/tasks/{done.pk}/complete", {"result": 1}, format="json")
    # when
    response = settle(owner.client.post, f"/api/v2/workflows/{workflow.pk}/runs/{run.pk}/cancel")
    # then
    assert response.status_code == 200, response.content
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert step_states(run) == [("first", "completed", 1), ("second", "cancelled", 1), ("after", "cancelled", 0)]
    assert dict(Task.objects.values_list("title", "status")) == {"First": "completed", "Second": "cancelled"}
    assert Task.objects.get(title="Second").error == "The run was cancelled."


@pytest.mark.django_db
def test_messages_delivered_again_apply_nothing_twice(team, make_workflow, django_capture_on_commit_callbacks):
    # given: a run whose messages are held back
    owner = team["owner"]
    workflow = make_workflow(owner, [{"name": "make", "action": "create_task", "params": {"title": "Once"}}])
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_workflow_run(owner.agent, workflow)
    # when: each message comes twice
    with django_capture_on_commit_callbacks(execute=False):
        engine.advance_run(run.pk)
        engine.advance_run(run.pk)
    step_run = StepRun.objects.get(run=run)
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = [engine.execute_step(step_run.pk), engine.execute_step(step_run.pk)]
    # then
    assert outcomes == ["completed", None]
    run.refresh_from_db()
    assert run.status == "completed"
    assert Task.objects.filter(title="Once").count() == 1
    assert StepRun.objects.get(run=run).attempt == 1


@pytest.mark.django_db
def test_the_sweep_advances_a_run_whose_message_was_lost(team, make_workflow, django_capture_on_commit_callbacks,
                                                         settle):
    # given: a run started while its message was lost
    owner = team["owner"]
    workflow = make_workflow(owner, [{"name": "make", "action": "create_task", "params": {"title": "Found again"}}])
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_workflow_run(owner.agent, workflow)
    # when: the sweep runs before and after its wake time
    assert settle(engine.sweep) == 0
    assert settle(engine.sweep, now=timezone.now() + engine.lease() + timedelta(seconds=1)) == 1
    # then
    run.refresh_from_db()
    assert (run.status, run.wake_at) == ("completed", None)
    assert Task.objects.filter(title="Found again").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_step_at_once_apply_it_once(team, make_workflow, monkeypatch):
    # given: a pending step, sent to be executed (the messages themselves held back)
    owner = team["owner"]
    workflow = make_workflow(owner, [{"name": "make", "action": "create_task", "params": {"title": "Raced"}}])
    sent = []
    monkeypatch.setattr(dispatch, "send", lambda name, *args, **kwargs: sent.append(name))
    run = runs.start_workflow_run(owner.agent, workflow)
    engine.advance_run(run.pk)
    assert sent == [dispatch.ADVANCE_RUN, dispatch.EXECUTE_STEP]
    step_run = StepRun.objects.get(run=run)
    # when: two threads execute it at the same moment
    outcomes, barrier = [], threading.Barrier(2)

    def worker():
        barrier.wait()
        try:
            outcomes.append(engine.execute_step(step_run.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # then
    assert sorted(outcomes, key=str) == [None, "completed"]
    assert Task.objects.filter(title="Raced").count() == 1
    assert StepRun.objects.get(pk=step_run.pk).attempt == 1


@pytest.mark.django_db
def test_parallel_waits_are_scheduled_side_by_side(team, make_workflow, run_now):
    # given: two one-second waits with nothing between them, and a step after both
    workflow = make_workflow(team["owner"], [
        {"name": "left", "action": "wait", "params": {"seconds": 1}},
        {"name": "right", "action": "wait", "params": {"seconds": 1}},
        {"name": "join", "action": "create_task", "params": {"title": "Joined"}, "depends_on": ["left", "right"]},
    ], workflow_type="parallel")
    # when
    run = run_now(team["owner"].agent, workflow)
    # then: both were waiting at once, and the join started after both ended
    assert run.status == "completed"
    left, right, join = StepRun.objects.filter(run=run).order_by("index")
    assert left.started_at < right.finished_at and right.started_at < left.finished_at
    assert join.started_at >= max(left.finished_at, right.finished_at)
    assert run.output["left"] == {"waited_seconds": 1}


@pytest.mark.django_db
def test_an_agent_task_acts_with_the_runners_rights_only(team, make_workflow, run_now):
    # given: the member runs the owner's workflow, which gives a task to an agent that cannot read `team`,
    # and the squad agent (which reads `team` but is no member of it) runs one that opens a task there
    to_outsider = make_workflow(team["owner"], review_steps({"agent_id": "outsider-agent"}), name="To outsider")
    by_descendant = make_workflow(team["owner"], review_steps({"agent_id": "member-agent"}), name="By descendant")
    # when
    refused_assignee = run_now(team["member"].agent, to_outsider, {"pr": "#1"})
    refused_runner = run_now(team["descendant"].agent, by_descendant, {"pr": "#2"})
    # then: nothing was opened
    assert refused_assignee.status == "failed"
    assert "Agent 'outsider-agent' cannot read namespace 'team'" in refused_assignee.error
    assert refused_runner.status == "failed"
    assert "Agent 'squad-agent' is not a member of namespace 'team'" in refused_runner.error
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_the_assignee_cannot_read_the_run_that_opened_its_task(team, make_workflow, run_now):
    # given
    owner, member = team["owner"], team["member"]
    workflow = make_workflow(owner, review_steps({"agent_id": "member-agent"}))
    run = run_now(owner.agent, workflow, {"pr": "#3"})
    # when
    as_assignee = member.client.get(f"/api/v2/workflows/{workflow.pk}/runs/{run.pk}")
    cancel = member.client.post(f"/api/v2/workflows/{workflow.pk}/runs/{run.pk}/cancel")
    as_manager = team["ns_admin"].client.get(f"/api/v2/workflows/{workflow.pk}/runs/{run.pk}")
    # then: the assignee sees its task, not the run; a manager sees the run without its outputs
    assert (as_assignee.status_code, cancel.status_code) == (404, 404)
    assert WorkflowRun.objects.get(pk=run.pk).status == "running"
    assert as_manager.status_code == 200
    assert as_manager.json()["outputs_hidden"] is True
    assert [step["output"] for step in as_manager.json()["step_runs"]] == [None, None]


@pytest.mark.django_db
def test_agent_task_params_are_checked_when_the_workflow_is_saved(team):
    # given
    owner = team["owner"]
    cases = [
        ({"title": "Both", "agent_id": "member-agent", "capability": {"review": True}}, "exactly one"),
        ({"title": "Neither"}, "exactly one"),
        ({"title": "Empty", "capability": {}}, "exactly one"),
        ({"title": "Late", "agent_id": "member-agent", "timeout_seconds": 0}, "timeout_seconds"),
        ({"agent_id": "member-agent"}, "needs the param 'title'"),
        ({"title": "Odd", "agent_id": "member-agent", "colour": "red"}, "Unknown param 'steps[0].params.colour'"),
    ]
    for params, words in cases:
        # when
        response = owner.client.post("/api/v2/workflows", {"name": "Bad", "steps": [
            {"name": "ask", "action": "agent_task", "params": params}]}, format="json")
        # then
        assert response.status_code == 400, (params, response.content)
        assert words in response.json()["error"]["message"], (params, response.json())
    assert owner.client.post("/api/v2/workflows", {"name": "Late-bound", "steps": [
        {"name": "ask", "action": "agent_task", "params": {"title": "Ask", "agent_id": "{{ input.who }}"}}]},
        format="json").status_code == 201


def test_start_run_contract_is_unchanged():
    assert StartRun.parse({}).input == {}


@pytest.mark.django_db
def test_the_admin_shows_a_run_as_a_timeline_of_its_steps(team, make_workflow, run_now, client, operator_user):
    # given: a run with a retried step
    workflow = make_workflow(team["owner"], [
        {"name": "leak", "action": "store_memory", "params": {"content": "x", "namespace": "other"},
         "on_failure": "continue", "retries": 1, "retry_backoff_seconds": 0},
        {"name": "pause", "action": "wait", "params": {"seconds": 0}},
    ])
    run = run_now(team["owner"].agent, workflow)
    client.force_login(operator_user)
    # when
    response = client.get(f"/admin/workflows/workflowrun/{run.pk}/change/")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="tmws-timeline"' in page
    assert "<td>leak</td><td>failed</td><td>1</td>" in page
    assert "<td>pause</td><td>completed</td><td>0</td>" in page
