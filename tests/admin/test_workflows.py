"""Tasks and workflows in the admin: writes go through workflows.services and follow its rules."""
from __future__ import annotations

from django.urls import reverse

from workflows.models import Task, Workflow, WorkflowRun

TASK_FORM = {"description": "", "task_type": "general", "priority": "medium", "tags": "[]", "max_retries": "3",
             "metadata": "{}", "due_at_0": "", "due_at_1": ""}
WORKFLOW_FORM = {"description": "", "workflow_type": "sequential", "status": "draft", "config": "{}", "tags": "[]",
                 "metadata": "{}", "runs-TOTAL_FORMS": "0", "runs-INITIAL_FORMS": "0"}


def test_adding_a_task_assigns_it_through_the_service(superuser_client, team):
    # given
    owner = team["owner"].agent
    # when
    response = superuser_client.post(
        reverse("admin:workflows_task_add"),
        {**TASK_FORM, "title": "Triage bugs", "status": "pending", "namespace": owner.namespace_id,
         "assigned_agent": owner.pk, "tags": '["bugs"]'},
    )
    # then
    assert response.status_code == 302
    task = Task.objects.get(title="Triage bugs")
    assert (task.assigned_agent, task.namespace, task.tags, task.created_by) == (owner, owner.namespace, ["bugs"], None)


def test_assigning_an_agent_that_cannot_read_the_namespace_is_refused(superuser_client, team):
    # when
    response = superuser_client.post(
        reverse("admin:workflows_task_add"),
        {**TASK_FORM, "title": "Secret work", "status": "pending", "namespace": team["owner"].agent.namespace_id,
         "assigned_agent": team["outsider"].agent.pk},
    )
    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["assigned_agent"] == [
        "Agent 'outsider-agent' cannot read namespace 'team'; it cannot take this task."
    ]
    assert not Task.objects.filter(title="Secret work").exists()


def test_status_changes_follow_the_transitions(superuser_client, one_of_each):
    # given: a completed task
    task = one_of_each["task"]
    Task.objects.filter(pk=task.pk).update(status="completed", progress=1.0)
    form = {**TASK_FORM, "title": task.title, "namespace": task.namespace_id, "assigned_agent": task.assigned_agent_id,
            "progress": "1.0", "result": "null", "error": ""}
    url = reverse("admin:workflows_task_change", args=[task.pk])
    # when
    response = superuser_client.post(url, {**form, "status": "in_progress"})
    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["status"] == ["A completed task cannot become in_progress."]
    task.refresh_from_db()
    assert task.status == "completed"


def test_workflow_steps_are_validated_by_the_service(superuser_client, team):
    # when
    response = superuser_client.post(
        reverse("admin:workflows_workflow_add"),
        {**WORKFLOW_FORM, "name": "Broken", "namespace": team["owner"].agent.namespace_id, "steps": '"not a list"'},
    )
    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["steps"]
    assert not Workflow.objects.filter(name="Broken").exists()


def test_a_workflow_with_finished_runs_is_deleted_with_them(superuser_client, one_of_each):
    # given
    workflow = one_of_each["workflow"]
    # when
    response = superuser_client.post(reverse("admin:workflows_workflow_delete", args=[workflow.pk]), {"post": "yes"})
    # then
    assert response.status_code == 302
    assert not Workflow.objects.filter(pk=workflow.pk).exists()
    assert not WorkflowRun.objects.filter(pk=one_of_each["workflowrun"].pk).exists()


def test_operator_sees_tasks_of_its_namespaces_only(scoped_tree, make_operator):
    # given
    for slug, ns in scoped_tree["namespaces"].items():
        Task.objects.create(title=f"Task in {slug}", namespace=ns)
    Task.objects.create(title="Task without namespace")
    operator = make_operator("alpha-op", {"alpha": ["view_namespace", "change_namespace"]})
    # when
    response = operator.get(reverse("admin:workflows_task_changelist"))
    # then
    assert {t.title for t in response.context["cl"].result_list} == {"Task in alpha", "Task in alpha-sub"}
