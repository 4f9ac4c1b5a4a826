"""The execution engine: sequential and DAG runs, conditions, failures, cancellation and idempotency."""
from __future__ import annotations

import dataclasses

import pytest

from core.errors import Conflict, InvalidInput
from memories import services as memory_services
from memories.contracts import StoreMemory
from memories.models import Memory
from workflows import actions, engine, runs, workflow_services
from workflows.contracts import StartRun
from workflows.definitions import UpdateWorkflow
from workflows.models import StepRun, Task, Workflow, WorkflowRun


def step_states(run) -> list[tuple]:
    return list(StepRun.objects.filter(run=run).order_by("index").values_list("name", "status"))


@pytest.mark.django_db
def test_sequential_run_does_real_work_through_the_services(team, make_workflow, run_now):
    # given
    owner = team["owner"]
    workflow = make_workflow(owner, [
        {"name": "make", "action": "create_task", "params": {"title": "Triage {{ input.ticket }}", "priority": "high"}},
        {"name": "start", "action": "update_task_status",
         "params": {"task_id": "{{ steps.make.id }}", "status": "in_progress", "progress": 0.5}},
        {"name": "note", "action": "store_memory",
         "params": {"content": "Ticket {{ input.ticket }} is being triaged.", "access_level": "shared",
                    "context_tags": ["triage"]}},
        {"name": "pause", "action": "wait", "params": {"seconds": 0}},
    ])
    # when
    run = run_now(owner.agent, workflow, {"ticket": "T-42"})
    # then
    assert (run.status, run.error, run.failed_step_index) == ("completed", "", None)
    assert step_states(run) == [("make", "completed"), ("start", "completed"), ("note", "completed"),
                                ("pause", "completed")]
    task = Task.objects.get(title="Triage T-42")
    assert (task.status, task.progress, task.priority, task.created_by_id) == ("in_progress", 0.5, "high", owner.agent.pk)
    memory = Memory.objects.get(pk=run.output["note"]["id"])
    assert (memory.content, memory.agent_id, memory.namespace.namespace) == (
        "Ticket T-42 is being triaged.", owner.agent.pk, "team")
    assert run.output["make"] == {"id": str(task.pk), "title": "Triage T-42", "status": "pending", "namespace": "team"}
    assert run.output["pause"] == {"waited_seconds": 0}
    assert run.started_at <= run.finished_at
    workflow.refresh_from_db()
    assert workflow.execution_count == 1
    assert workflow.last_executed_at == run.started_at


@pytest.mark.django_db
def test_dag_run_follows_dependencies_not_list_order(team, make_workflow, run_now):
    # given: the first listed step needs the output of the last one
    owner = team["owner"]
    workflow = make_workflow(owner, workflow_type="parallel", steps=[
        {"name": "finish", "action": "update_task_status",
         "params": {"task_id": "{{ steps.make.id }}", "status": "completed", "result": {"by": "workflow"}}},
        {"name": "assign", "action": "assign_task",
         "params": {"task_id": "{{ steps.make.id }}", "agent_id": "member-agent"}, "depends_on": ["make"]},
        {"name": "make", "action": "create_task", "params": {"title": "Rotate keys"}},
    ])
    # when
    run = run_now(owner.agent, workflow)
    # then
    assert run.status == "completed"
    task = Task.objects.get(title="Rotate keys")
    assert (task.status, task.result, task.assigned_agent.agent_id) == ("completed", {"by": "workflow"}, "member-agent")
    assert run.output["assign"] == {"id": str(task.pk), "assigned_agent_id": "member-agent"}
    assert run.current_step_index == 1


CONDITIONAL_STEPS = [
    {"name": "find", "action": "search_memories", "params": {"query": "{{ input.topic }}", "mode": "keyword"}},
    {"name": "follow-up", "action": "create_task", "params": {"title": "Follow up on {{ input.topic }}"},
     "when": {"step": "find", "result_count_gte": 1}},
    {"name": "research", "action": "create_task", "params": {"title": "Research {{ input.topic }}"},
     "when": {"step": "follow-up", "status": "skipped"}},
    {"name": "schedule", "action": "update_task_status",
     "params": {"task_id": "{{ steps.follow-up.id }}", "status": "in_progress"}},
]


@pytest.mark.parametrize(
    ("runner", "expected_states", "expected_task"),
    [
        ("owner", [("find", "completed"), ("follow-up", "completed"), ("research", "skipped"),
                   ("schedule", "completed")], "Follow up on invoices"),
        # The member cannot read the owner's private memory, so the search finds nothing.
        ("member", [("find", "completed"), ("follow-up", "skipped"), ("research", "completed"),
                    ("schedule", "skipped")], "Research invoices"),
    ],
)
@pytest.mark.django_db
def test_conditional_steps_are_skipped_when_their_condition_fails(
    team, make_workflow, run_now, runner, expected_states, expected_task
):
    # given
    owner = team["owner"]
    memory_services.create_memory(
        owner.agent, StoreMemory.parse({"content": "Overdue invoices go to finance on Fridays.", "access_level": "private"})
    )
    workflow = make_workflow(owner, CONDITIONAL_STEPS, workflow_type="conditional")
    # when
    run = run_now(team[runner].agent, workflow, {"topic": "invoices"})
    # then
    assert run.status == "completed"
    assert step_states(run) == expected_states
    assert list(Task.objects.values_list("title", flat=True)) == [expected_task]
    assert run.output["find"]["count"] == (1 if runner == "owner" else 0)
    reasons = dict(StepRun.objects.filter(run=run, status="skipped").values_list("name", "metadata__reason"))
    if runner == "member":
        assert reasons == {"follow-up": "The step's condition did not hold.",
                           "schedule": "Step 'follow-up', which this step needs, was skipped."}


@pytest.mark.django_db
def test_a_failing_step_fails_the_run_and_skips_the_rest(team, make_workflow, run_now):
    # given: the owner's workflow stores a memory into a namespace it is not a member of
    owner = team["owner"]
    workflow = make_workflow(owner, [
        {"name": "make", "action": "create_task", "params": {"title": "Prepare"}},
        {"name": "leak", "action": "store_memory", "params": {"content": "plans", "namespace": "other",
                                                              "access_level": "shared"}},
        {"name": "after", "action": "create_task", "params": {"title": "Never made"}},
    ])
    # when
    run = run_now(owner.agent, workflow)
    # then
    assert (run.status, run.failed_step_index) == ("failed", 1)
    assert run.error == ("Step 'leak' failed: Agent 'owner-agent' is not a member of namespace 'other'. "
                         "(field: namespace)")
    assert step_states(run) == [("make", "completed"), ("leak", "failed"), ("after", "skipped")]
    failed = StepRun.objects.get(run=run, name="leak")
    assert failed.error.startswith("Agent 'owner-agent' is not a member")
    assert failed.started_at is not None and failed.finished_at is not None
    assert list(Task.objects.values_list("title", flat=True)) == ["Prepare"]
    assert not Memory.objects.filter(namespace__namespace="other").exists()
    assert list(run.output) == ["make"]


@pytest.mark.django_db
def test_a_step_whose_reference_does_not_resolve_fails(team, make_workflow, run_now):
    # given
    owner = team["owner"]
    workflow = make_workflow(owner, [{"name": "make", "action": "create_task", "params": {"title": "{{ input.title }}"}}])
    # when
    run = run_now(owner.agent, workflow, {})
    # then
    assert (run.status, run.failed_step_index) == ("failed", 0)
    assert "'{{ input.title }}' does not resolve" in run.error
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_cancel_stops_the_run_before_the_next_step(team, make_workflow, run_now, monkeypatch):
    # given: the first step's action cancels the run while it is in flight
    owner = team["owner"]
    workflow = make_workflow(owner, [
        {"name": "first", "action": "wait", "params": {"seconds": 0}},
        {"name": "second", "action": "create_task", "params": {"title": "Should not exist"}},
    ])
    wait = actions.ACTIONS["wait"]

    def wait_then_cancel(context, params):
        run = WorkflowRun.objects.get(workflow=workflow)
        runs.cancel_workflow_run(context.principal, run)
        return wait.start(context, params)

    monkeypatch.setitem(actions.ACTIONS, "wait", dataclasses.replace(wait, start=wait_then_cancel))
    # when
    run = run_now(owner.agent, workflow)
    # then
    assert (run.status, run.error) == ("cancelled", "Cancelled.")
    assert step_states(run) == [("first", "completed"), ("second", "cancelled")]
    assert Task.objects.count() == 0
    with pytest.raises(Conflict):
        runs.cancel_workflow_run(owner.agent, run)


@pytest.mark.django_db
def test_a_run_cancelled_before_it_starts_never_executes(team, make_workflow):
    # given
    owner = team["owner"]
    workflow = make_workflow(owner, [{"name": "make", "action": "create_task", "params": {"title": "Nope"}}])
    run = runs.start_workflow_run(owner.agent, workflow)
    runs.cancel_workflow_run(owner.agent, run)
    # when
    outcome = engine.advance_run(run.pk)
    # then
    assert outcome == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert (StepRun.objects.filter(run=run).count(), Task.objects.count()) == (0, 0)
    assert Workflow.objects.get(pk=workflow.pk).execution_count == 0


@pytest.mark.django_db
def test_a_finished_run_is_not_executed_twice(team, make_workflow, run_now):
    # given
    owner = team["owner"]
    workflow = make_workflow(owner, [{"name": "make", "action": "create_task", "params": {"title": "Once"}}])
    run = run_now(owner.agent, workflow)
    step_run = StepRun.objects.get(run=run)
    # when: every message of the run comes again
    outcomes = (engine.advance_run(run.pk), engine.execute_step(step_run.pk), engine.resume_step(step_run.pk))
    # then
    assert outcomes == ("completed", None, None)
    assert Task.objects.filter(title="Once").count() == 1
    assert StepRun.objects.filter(run=run).count() == 1
    assert Workflow.objects.get(pk=workflow.pk).execution_count == 1


@pytest.mark.django_db
def test_a_run_uses_the_steps_as_they_were_when_it_started(team, make_workflow, django_capture_on_commit_callbacks):
    # given
    owner = team["owner"]
    workflow = make_workflow(owner, [{"name": "make", "action": "create_task", "params": {"title": "Old plan"}}])
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = runs.start_workflow_run(owner.agent, workflow)
    workflow_services.update_workflow(owner.agent, workflow, UpdateWorkflow.parse({
        "steps": [{"name": "make", "action": "create_task", "params": {"title": "New plan"}}]}))
    # when
    with django_capture_on_commit_callbacks(execute=True):
        for callback in queued:
            callback()
    # then
    run.refresh_from_db()
    assert run.status == "completed"
    assert list(Task.objects.values_list("title", flat=True)) == ["Old plan"]


@pytest.mark.django_db
def test_a_run_of_a_retired_agent_fails_without_running_steps(team, make_workflow, django_capture_on_commit_callbacks):
    # given
    owner = team["owner"]
    workflow = make_workflow(owner, [{"name": "make", "action": "create_task", "params": {"title": "Orphan"}}])
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = runs.start_workflow_run(owner.agent, workflow)
    type(owner.agent).objects.filter(pk=owner.agent.pk).update(is_active=False)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        for callback in queued:
            callback()
    # then
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "Agent 'owner-agent' is no longer active.")
    assert step_states(run) == [("make", "skipped")]
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_an_operator_run_acts_as_the_operator(team, make_workflow, run_now, operator_user):
    # given
    workflow = make_workflow(team["owner"], [
        {"name": "make", "action": "create_task", "params": {"title": "Audit", "namespace": "other"}}])
    # when
    run = run_now(operator_user, workflow)
    # then
    assert (run.status, run.triggered_by, run.metadata["triggered_by_user_id"]) == ("completed", None, operator_user.pk)
    task = Task.objects.get(title="Audit")
    assert (task.namespace.namespace, task.created_by) == ("other", None)


@pytest.mark.django_db
def test_inactive_workflows_and_invalid_stored_steps_do_not_start(team, make_workflow):
    # given
    owner = team["owner"]
    inactive = make_workflow(owner, [], status="inactive")
    legacy = make_workflow(owner, [], name="Legacy")
    Workflow.objects.filter(pk=legacy.pk).update(steps=[{"step": 1, "type": "persona_call"}])
    legacy.refresh_from_db()
    # when / then
    with pytest.raises(Conflict):
        runs.start_workflow_run(owner.agent, inactive)
    with pytest.raises(InvalidInput) as rejected:
        runs.start_workflow_run(owner.agent, legacy)
    assert rejected.value.message.startswith("The workflow's steps are invalid")
    with pytest.raises(InvalidInput):
        runs.start_workflow_run(owner.agent, make_workflow(owner, [], name="Bad input"),
                                StartRun.parse({"input": ["not", "an", "object"]}))
    assert WorkflowRun.objects.count() == 0
