"""Owner / member / outsider for every task and workflow endpoint; denied calls change nothing.

The owner created the objects in namespace `team`; the member shares that namespace; the
outsider's home is `other`. Objects the caller cannot read answer 404, readable ones the
caller may not change answer 403.
"""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from workflows import runs
from workflows.models import Task, Workflow, WorkflowRun

ACTORS = ("owner", "member", "outsider", "anonymous")


def client_for(team, actor: str):
    return APIClient() if actor == "anonymous" else team[actor].client


def task_state(task_id) -> list:
    return list(Task.objects.filter(pk=task_id).values(
        "title", "status", "priority", "progress", "assigned_agent_id", "result", "updated_at"))


TASK_ENDPOINTS = {
    # name: (method, path suffix, body, {actor: expected status})
    "retrieve": ("get", "", None, {"owner": 200, "member": 200, "outsider": 404}),
    "update": ("patch", "", {"title": "Renamed"}, {"owner": 200, "member": 403, "outsider": 404}),
    "assign": ("post", "/assign", {"agent_id": "member-agent"}, {"owner": 200, "member": 403, "outsider": 404}),
    "status": ("post", "/status", {"status": "in_progress", "progress": 0.3},
               {"owner": 200, "member": 403, "outsider": 404}),
    "complete": ("post", "/complete", {"result": {"ok": True}}, {"owner": 200, "member": 403, "outsider": 404}),
    "delete": ("delete", "", None, {"owner": 204, "member": 403, "outsider": 404}),
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("endpoint", sorted(TASK_ENDPOINTS))
@pytest.mark.django_db
def test_task_endpoints_by_actor(team, make_task, endpoint, actor):
    # given
    task = make_task(team["owner"], "Owner's task")
    method, suffix, body, expected = TASK_ENDPOINTS[endpoint]
    before = task_state(task.pk)
    # when
    response = getattr(client_for(team, actor), method)(f"/api/v2/tasks/{task.pk}{suffix}", body, format="json")
    # then
    assert response.status_code == expected.get(actor, 401), response.content
    if response.status_code >= 400:
        assert task_state(task.pk) == before
        assert set(response.json()["error"]) >= {"code", "message"}
        if response.status_code == 404:
            assert "Owner's task" not in response.content.decode()


@pytest.mark.parametrize(("actor", "listed"), [("owner", True), ("member", True), ("outsider", False)])
@pytest.mark.django_db
def test_task_list_by_actor(team, make_task, actor, listed):
    # given
    task = make_task(team["owner"])
    # when
    response = team[actor].client.get("/api/v2/tasks")
    # then
    assert [item["id"] for item in response.json()["results"]] == ([str(task.pk)] if listed else [])


@pytest.mark.parametrize(("actor", "expected"), [("owner", 201), ("member", 201), ("outsider", 403), ("anonymous", 401)])
@pytest.mark.django_db
def test_task_create_in_team_by_actor(team, actor, expected):
    # when
    response = client_for(team, actor).post("/api/v2/tasks", {"title": "New", "namespace": "team"}, format="json")
    # then
    assert response.status_code == expected
    assert Task.objects.count() == (1 if expected == 201 else 0)


def workflow_state(workflow_id) -> list:
    return list(Workflow.objects.filter(pk=workflow_id).values("name", "status", "steps", "updated_at", "execution_count"))


def run_state(workflow_id) -> list:
    return sorted(WorkflowRun.objects.filter(workflow_id=workflow_id).values_list("id", "status"))


STEPS = [{"name": "pause", "action": "wait", "params": {"seconds": 0}}]

WORKFLOW_ENDPOINTS = {
    # name: (method, path suffix ({run} is the owner's pending run), body, {actor: expected status})
    "retrieve": ("get", "", None, {"owner": 200, "member": 200, "outsider": 404}),
    "update": ("patch", "", {"name": "Renamed"}, {"owner": 200, "member": 403, "outsider": 404}),
    "delete": ("delete", "", None, {"owner": 204, "member": 403, "outsider": 404}),
    "run": ("post", "/run", {"input": {"x": 1}}, {"owner": 202, "member": 202, "outsider": 404}),
    "runs": ("get", "/runs", None, {"owner": 200, "member": 200, "outsider": 404}),
    "run_detail": ("get", "/runs/{run}", None, {"owner": 200, "member": 404, "outsider": 404}),
    "cancel": ("post", "/runs/{run}/cancel", None, {"owner": 200, "member": 404, "outsider": 404}),
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("endpoint", sorted(WORKFLOW_ENDPOINTS))
@pytest.mark.django_db
def test_workflow_endpoints_by_actor(team, make_workflow, endpoint, actor):
    # given: the owner's workflow with one run that has not executed yet
    workflow = make_workflow(team["owner"], STEPS, name="Owner's workflow")
    run = runs.start_workflow_run(team["owner"].agent, workflow)
    if endpoint == "delete":  # a workflow with an unfinished run cannot be deleted by anyone
        WorkflowRun.objects.filter(pk=run.pk).update(status="cancelled")
    method, suffix, body, expected = WORKFLOW_ENDPOINTS[endpoint]
    before = (workflow_state(workflow.pk), run_state(workflow.pk))
    # when
    response = getattr(client_for(team, actor), method)(
        f"/api/v2/workflows/{workflow.pk}{suffix.format(run=run.pk)}", body, format="json")
    # then
    assert response.status_code == expected.get(actor, 401), response.content
    if response.status_code >= 400:
        assert (workflow_state(workflow.pk), run_state(workflow.pk)) == before
        assert "Owner's workflow" not in response.content.decode()
    if endpoint == "runs" and response.status_code == 200:
        own_runs = [str(run.pk)] if actor == "owner" else []  # the member sees only runs it started
        assert [item["id"] for item in response.json()["results"]] == own_runs


@pytest.mark.parametrize(("actor", "listed"), [("owner", True), ("member", True), ("outsider", False)])
@pytest.mark.django_db
def test_workflow_list_by_actor(team, make_workflow, actor, listed):
    # given
    workflow = make_workflow(team["owner"], STEPS)
    # when
    response = team[actor].client.get("/api/v2/workflows")
    # then
    assert [item["id"] for item in response.json()["results"]] == ([str(workflow.pk)] if listed else [])


@pytest.mark.parametrize(("actor", "expected"), [("owner", 201), ("member", 201), ("outsider", 403), ("anonymous", 401)])
@pytest.mark.django_db
def test_workflow_create_in_team_by_actor(team, actor, expected):
    # when
    response = client_for(team, actor).post(
        "/api/v2/workflows", {"name": "New", "namespace": "team", "steps": STEPS}, format="json")
    # then
    assert response.status_code == expected
    assert Workflow.objects.count() == (1 if expected == 201 else 0)


@pytest.mark.parametrize(("actor", "sees_and_cancels"), [("ns_admin", True), ("admin", True), ("descendant", False)])
@pytest.mark.django_db
def test_workflow_managers_see_and_cancel_others_runs(team, make_workflow, actor, sees_and_cancels):
    # given: a run the member started on the owner's workflow
    workflow = make_workflow(team["owner"], STEPS)
    run = runs.start_workflow_run(team["member"].agent, workflow)
    client = team[actor].client
    # when
    listed = client.get(f"/api/v2/workflows/{workflow.pk}/runs").json()["results"]
    cancelled = client.post(f"/api/v2/workflows/{workflow.pk}/runs/{run.pk}/cancel")
    # then
    assert [item["id"] for item in listed] == ([str(run.pk)] if sees_and_cancels else [])
    assert cancelled.status_code == (200 if sees_and_cancels else 404)
    run.refresh_from_db()
    assert run.status == ("cancelled" if sees_and_cancels else "pending")
    # the owner manages its workflow, so it sees the member's run too
    assert [item["id"] for item in team["owner"].client.get(f"/api/v2/workflows/{workflow.pk}/runs").json()["results"]] \
        == [str(run.pk)]
