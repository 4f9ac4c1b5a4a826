"""API v2 for tasks and workflows: CRUD, actions, filters, runs and the error shape."""
from __future__ import annotations

import pytest

from workflows.models import StepRun, Task, WorkflowRun


@pytest.mark.django_db
def test_task_crud_through_the_api(team):
    # given
    client = team["owner"].client
    # when
    created = client.post("/api/v2/tasks", {"title": "Ship 2.1", "priority": "high", "tags": ["release"],
                                            "assigned_agent_id": "member-agent", "due_at": "2026-12-24T12:00:00Z"},
                          format="json")
    # then
    assert created.status_code == 201, created.content
    body = created.json()
    assert {key: body[key] for key in ("title", "priority", "status", "namespace", "assigned_agent_id", "created_by",
                                       "tags", "dependencies", "progress", "due_at")} == {
        "title": "Ship 2.1", "priority": "high", "status": "pending", "namespace": "team",
        "assigned_agent_id": "member-agent", "created_by": "owner-agent", "tags": ["release"], "dependencies": [],
        "progress": 0.0, "due_at": "2026-12-24T12:00:00Z",
    }
    task_id = body["id"]
    assert client.get(f"/api/v2/tasks/{task_id}/").json()["title"] == "Ship 2.1"
    patched = client.patch(f"/api/v2/tasks/{task_id}", {"description": "Cut the branch", "progress": 0.1}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["description"], patched.json()["progress"]) == ("Cut the branch", 0.1)
    assert client.delete(f"/api/v2/tasks/{task_id}").status_code == 204
    assert client.get(f"/api/v2/tasks/{task_id}").status_code == 404


@pytest.mark.django_db
def test_task_actions_assign_status_complete(team, make_task):
    # given
    client = team["owner"].client
    first = make_task(team["owner"], "Draft")
    second = make_task(team["owner"], "Publish", dependencies=[str(first.pk)])
    # when
    assigned = client.post(f"/api/v2/tasks/{second.pk}/assign", {"agent_id": "squad-agent"}, format="json")
    blocked = client.post(f"/api/v2/tasks/{second.pk}/status", {"status": "in_progress"}, format="json")
    started = client.post(f"/api/v2/tasks/{first.pk}/status", {"status": "in_progress", "progress": 0.4}, format="json")
    completed = client.post(f"/api/v2/tasks/{first.pk}/complete", {"result": {"words": 900}}, format="json")
    unblocked = client.post(f"/api/v2/tasks/{second.pk}/status", {"status": "in_progress"}, format="json")
    again = client.post(f"/api/v2/tasks/{first.pk}/complete", {}, format="json")
    # then
    assert assigned.json()["assigned_agent_id"] == "squad-agent"
    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "dependencies_incomplete"
    assert list(blocked.json()["error"]["fields"]) == ["dependencies"]
    assert (started.json()["status"], started.json()["progress"]) == ("in_progress", 0.4)
    assert started.json()["started_at"] is not None
    assert (completed.json()["status"], completed.json()["result"]) == ("completed", {"words": 900})
    assert completed.json()["completed_at"] is not None
    assert unblocked.status_code == 200
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_transition"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "t", "priority": "urgent"}, "priority"),
        ({"title": "t", "namespace": "nowhere"}, "namespace"),
        ({"title": "t", "dependencies": "abc"}, "dependencies"),
        ({"title": "t", "unknown": 1}, "unknown"),
    ],
)
@pytest.mark.django_db
def test_task_create_errors_use_the_one_error_shape(team, body, field):
    # when
    response = team["owner"].client.post("/api/v2/tasks", body, format="json")
    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == [field]
    assert error["code"] in ("invalid", "unknown_namespace")
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_task_api_rejects_non_object_bodies_and_bad_ids(team, make_task):
    # given
    client = team["owner"].client
    task = make_task(team["owner"])
    # then
    assert client.post("/api/v2/tasks", ["title"], format="json").status_code == 400
    assert client.post(f"/api/v2/tasks/{task.pk}/status", {}, format="json").json()["error"]["fields"] == {
        "status": ["status is required."]}
    assert client.post(f"/api/v2/tasks/{task.pk}/assign", {}, format="json").status_code == 400
    assert client.get("/api/v2/tasks/not-a-uuid").status_code == 404
    assert client.get("/api/v2/tasks?status=done").status_code == 400


@pytest.mark.django_db
def test_task_list_filters(team, make_task):
    # given
    owner = team["owner"]
    make_task(owner, "a", priority="high", tags=["ops"], assigned_agent_id="member-agent")
    make_task(owner, "b", priority="low", status="in_progress")
    make_task(team["descendant"], "c", tags=["ops"])
    # when
    def titles(query: str) -> list[str]:
        response = owner.client.get(f"/api/v2/tasks?{query}")
        assert response.status_code == 200, response.content
        return sorted(item["title"] for item in response.json()["results"])
    # then
    assert titles("") == ["a", "b"]  # the squad's task is in a namespace the owner cannot read
    assert titles("priority=high") == ["a"]
    assert titles("status=in_progress") == ["b"]
    assert titles("assigned_agent_id=member-agent") == ["a"]
    assert titles("tag=ops") == ["a"]
    assert titles("namespace=team") == ["a", "b"]
    assert sorted(i["title"] for i in team["descendant"].client.get("/api/v2/tasks?tag=ops").json()["results"]) == [
        "a", "c"]


STEPS = [
    {"name": "make", "action": "create_task", "params": {"title": "Summarise {{ input.topic }}"}},
    {"name": "start", "action": "update_task_status", "params": {"task_id": "{{ steps.make.id }}", "status": "in_progress"}},
]


@pytest.mark.django_db
def test_workflow_crud_run_and_run_detail(team, django_capture_on_commit_callbacks):
    # given
    client = team["owner"].client
    created = client.post("/api/v2/workflows", {"name": "Summaries", "workflow_type": "sequential", "steps": STEPS,
                                                "status": "active", "tags": ["daily"]}, format="json")
    assert created.status_code == 201, created.content
    workflow_id = created.json()["id"]
    assert created.json()["steps"][0] == {**STEPS[0], "depends_on": []}
    # when
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/api/v2/workflows/{workflow_id}/run", {"input": {"topic": "support"}}, format="json")
    # then
    assert started.status_code == 202, started.content
    assert (started.json()["status"], started.json()["triggered_by"]) == ("pending", "owner-agent")
    run_id = started.json()["id"]
    detail = client.get(f"/api/v2/workflows/{workflow_id}/runs/{run_id}").json()
    assert (detail["status"], detail["input"], detail["failed_step_index"]) == ("completed", {"topic": "support"}, None)
    assert [(s["name"], s["status"], s["reason"]) for s in detail["step_runs"]] == [
        ("make", "completed", ""), ("start", "completed", "")]
    assert detail["step_runs"][1]["output"]["status"] == "in_progress"
    runs = client.get(f"/api/v2/workflows/{workflow_id}/runs/").json()
    assert [run["id"] for run in runs["results"]] == [run_id]
    workflow = client.get(f"/api/v2/workflows/{workflow_id}").json()
    assert workflow["execution_count"] == 1 and workflow["last_executed_at"] is not None
    finished = client.post(f"/api/v2/workflows/{workflow_id}/runs/{run_id}/cancel")
    assert (finished.status_code, finished.json()["error"]["code"]) == (409, "run_finished")
    patched = client.patch(f"/api/v2/workflows/{workflow_id}", {"status": "inactive"}, format="json")
    assert patched.json()["status"] == "inactive"
    assert client.post(f"/api/v2/workflows/{workflow_id}/run", {}, format="json").status_code == 409
    assert client.delete(f"/api/v2/workflows/{workflow_id}").status_code == 204
    assert (WorkflowRun.objects.count(), StepRun.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"name": "a", "action": "fail"}], "steps[0].action"),
        ([{"name": "a", "action": "wait", "params": {"seconds": 0}}] * 2, "steps[1].name"),
        ([{"name": "a", "action": "wait", "params": {"seconds": 0}, "depends_on": ["b"]}], "steps[0].depends_on"),
        ([{"name": "a", "action": "wait", "params": {"seconds": 0}, "depends_on": ["b"]},
          {"name": "b", "action": "wait", "params": {"seconds": 0}, "depends_on": ["a"]}], "steps[0].depends_on"),
    ],
)
@pytest.mark.django_db
def test_workflow_create_rejects_invalid_steps(team, steps, field):
    # when
    response = team["owner"].client.post(
        "/api/v2/workflows", {"name": "Bad", "workflow_type": "hybrid", "steps": steps}, format="json")
    # then
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


@pytest.mark.django_db
def test_cancel_a_pending_run_through_the_api(team, make_workflow):
    # given: a run whose execution has not been picked up yet
    owner = team["owner"]
    workflow = make_workflow(owner, STEPS)
    run_id = owner.client.post(f"/api/v2/workflows/{workflow.pk}/run", {"input": {"topic": "x"}}, format="json").json()["id"]
    # when
    cancelled = owner.client.post(f"/api/v2/workflows/{workflow.pk}/runs/{run_id}/cancel")
    # then
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    assert owner.client.delete(f"/api/v2/workflows/{workflow.pk}").status_code == 204


@pytest.mark.django_db
def test_deleting_a_workflow_with_an_unfinished_run_is_refused(team, make_workflow):
    # given
    owner = team["owner"]
    workflow = make_workflow(owner, STEPS)
    owner.client.post(f"/api/v2/workflows/{workflow.pk}/run", {"input": {"topic": "x"}}, format="json")
    # when
    response = owner.client.delete(f"/api/v2/workflows/{workflow.pk}")
    # then
    assert (response.status_code, response.json()["error"]["code"]) == (409, "has_active_runs")
    assert WorkflowRun.objects.filter(workflow=workflow).count() == 1


@pytest.mark.django_db
def test_anonymous_requests_answer_401(db):
    from rest_framework.test import APIClient

    # then
    assert APIClient().get("/api/v2/tasks").status_code == 401
    assert APIClient().post("/api/v2/workflows", {}, format="json").status_code == 401
