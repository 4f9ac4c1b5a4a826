"""Task services: defaults, validation, visibility, status transitions, dependencies and retries."""
from __future__ import annotations

import pytest

from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from workflows import task_services
from workflows.contracts import AssignTask, CompleteTask, CreateTask, UpdateTask, UpdateTaskStatus
from workflows.models import Task


def moving_to(status: str, **values) -> UpdateTaskStatus:
    return UpdateTaskStatus.parse({"status": status, **values})


def assigning(agent_id: str | None) -> AssignTask:
    return AssignTask.parse({"agent_id": agent_id})


@pytest.mark.django_db
def test_create_task_defaults_to_the_agents_home_namespace(team):
    # given
    owner = team["owner"]
    # when
    task = task_services.create_task(
        owner.agent, CreateTask.parse({"title": "  Write the release notes  ", "tags": ["docs", "docs"]}))
    # then
    task.refresh_from_db()
    assert (task.title, task.namespace.namespace, task.created_by_id) == ("Write the release notes", "team", owner.agent.pk)
    assert (task.status, task.priority, task.progress, task.tags) == ("pending", "medium", 0.0, ["docs"])
    assert (task.started_at, task.completed_at, task.max_retries) == (None, None, 3)


@pytest.mark.django_db
def test_create_task_in_a_namespace_the_agent_is_not_a_member_of_is_refused(team):
    # when
    with pytest.raises(Forbidden) as refused:
        task_services.create_task(team["owner"].agent, CreateTask.parse({"title": "Sneak in", "namespace": "other"}))
    # then
    assert refused.value.field == "namespace"
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": 5}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"title": "t", "priority": "urgent"}, "priority"),
        ({"title": "t", "status": "done"}, "status"),
        ({"title": "t", "tags": "docs"}, "tags"),
        ({"title": "t", "tags": [""]}, "tags"),
        ({"title": "t", "due_at": "next tuesday"}, "due_at"),
        ({"title": "t", "max_retries": -1}, "max_retries"),
        ({"title": "t", "max_retries": True}, "max_retries"),
        ({"title": "t", "metadata": []}, "metadata"),
        ({"title": "t", "namespace": "no-such-namespace"}, "namespace"),
        ({"title": "t", "dependencies": ["not-a-uuid"]}, "dependencies"),
        ({"title": "t", "dependencies": ["8a6e0804-2bd0-4672-b79d-d97027f9071f"]}, "dependencies"),
        ({"title": "t", "assigned_agent_id": "nobody"}, "assigned_agent_id"),
        ({"title": "t", "assigned_agent_id": "outsider-agent"}, "assigned_agent_id"),
        ({"title": "t", "colour": "blue"}, "colour"),
    ],
)
@pytest.mark.django_db
def test_create_task_rejects_bad_input_naming_the_field(team, data, field):
    # when
    with pytest.raises(InvalidInput) as rejected:
        task_services.create_task(team["owner"].agent, CreateTask.parse(data))
    # then
    assert rejected.value.field == field
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_create_task_parses_due_at_and_takes_an_assignee_who_reads_the_namespace(team):
    # when
    task = task_services.create_task(
        team["owner"].agent,
        CreateTask.parse({"title": "Review", "due_at": "2026-12-01T09:30:00Z", "assigned_agent_id": "squad-agent",
                          "priority": "high"}),
    )
    # then
    assert task.due_at.isoformat() == "2026-12-01T09:30:00+00:00"
    assert task.assigned_agent.agent_id == "squad-agent"


@pytest.mark.parametrize(
    ("viewer", "sees"),
    [
        ("owner", True),
        ("member", True),
        ("descendant", True),
        ("ns_admin", True),
        ("admin", True),
        ("ancestor", False),
        ("outsider", False),
    ],
)
@pytest.mark.django_db
def test_task_visibility(team, make_task, viewer, sees):
    # given
    task = make_task(team["owner"])
    # when
    visible = Task.objects.visible_to(team[viewer].agent).filter(pk=task.pk).exists()
    # then
    assert visible is sees
    if not sees:
        with pytest.raises(NotFound):
            task_services.get_visible_task(team[viewer].agent, task.pk)


@pytest.mark.django_db
def test_assigned_tasks_and_operator_visibility(team, make_task, operator_user):
    # given: a task in `other` made by the outsider and assigned to the sharee (home `other` too)
    task = make_task(team["outsider"], assigned_agent_id="sharee-agent")
    # then
    assert Task.objects.visible_to(team["sharee"].agent).filter(pk=task.pk).exists()
    assert Task.objects.visible_to(operator_user).filter(pk=task.pk).exists()
    assert not Task.objects.visible_to(team["owner"].agent).filter(pk=task.pk).exists()


@pytest.mark.django_db
def test_status_moves_set_timestamps_and_progress(team, make_task):
    # given
    owner = team["owner"]
    task = make_task(owner)
    # when
    started = task_services.update_task_status(owner.agent, task, moving_to("in_progress", progress=0.25))
    # then
    assert (started.status, started.progress) == ("in_progress", 0.25)
    assert started.started_at is not None and started.completed_at is None
    # when
    done = task_services.complete_task(owner.agent, started, CompleteTask.parse({"result": {"pages": 3}}))
    # then
    done.refresh_from_db()
    assert (done.status, done.progress, done.result) == ("completed", 1.0, {"pages": 3})
    assert done.completed_at >= done.started_at


@pytest.mark.parametrize("final", ["completed", "cancelled", "skipped"])
@pytest.mark.django_db
def test_final_statuses_cannot_move_again(team, make_task, final):
    # given
    owner = team["owner"]
    task = task_services.update_task_status(owner.agent, make_task(owner), moving_to(final))
    # when
    with pytest.raises(Conflict) as refused:
        task_services.update_task_status(owner.agent, task, moving_to("in_progress"))
    # then
    assert (refused.value.code, refused.value.field) == ("invalid_transition", "status")
    task.refresh_from_db()
    assert task.status == final


@pytest.mark.parametrize("target", ["in_progress", "completed"])
@pytest.mark.django_db
def test_a_task_cannot_start_or_complete_before_its_dependencies(team, make_task, target):
    # given
    owner = team["owner"]
    first = make_task(owner, "Collect figures")
    second = make_task(owner, "Write report", dependencies=[str(first.pk)])
    # when
    with pytest.raises(InvalidInput) as refused:
        task_services.update_task_status(owner.agent, second, moving_to(target))
    # then
    assert (refused.value.code, refused.value.field) == ("dependencies_incomplete", "dependencies")
    assert str(first.pk) in refused.value.message
    second.refresh_from_db()
    assert (second.status, second.started_at) == ("pending", None)
    # when the dependency completes
    task_services.complete_task(owner.agent, first)
    moved = task_services.update_task_status(owner.agent, second, moving_to(target))
    # then
    assert moved.status == target


@pytest.mark.django_db
def test_failed_task_is_retried_until_max_retries(team, make_task):
    # given
    owner = team["owner"]
    task = task_services.update_task_status(owner.agent, make_task(owner, max_retries=1), moving_to("failed", error="timeout"))
    assert (task.error, task.completed_at is not None) == ("timeout", True)
    # when
    retried = task_services.update_task_status(owner.agent, task, moving_to("in_progress"))
    # then
    assert (retried.retry_count, retried.error, retried.completed_at) == (1, "", None)
    failed_again = task_services.update_task_status(owner.agent, retried, moving_to("failed"))
    with pytest.raises(Conflict) as refused:
        task_services.update_task_status(owner.agent, failed_again, moving_to("pending"))
    assert refused.value.code == "retries_exhausted"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"progress": 1.5}, "progress"), ({"progress": "half"}, "progress"), ({"error": 3}, "error"),
     ({"result": float("nan")}, "result")],
)
@pytest.mark.django_db
def test_update_task_status_validates_its_values(team, make_task, kwargs, field):
    # given
    owner = team["owner"]
    task = make_task(owner)
    # when
    with pytest.raises(InvalidInput) as rejected:
        task_services.update_task_status(owner.agent, task, moving_to("in_progress", **kwargs))
    # then
    assert rejected.value.field == field
    task.refresh_from_db()
    assert task.status == "pending"


@pytest.mark.django_db
def test_dependencies_cannot_form_a_cycle(team, make_task):
    # given: c depends on b, b on a
    owner = team["owner"]
    a = make_task(owner, "a")
    b = make_task(owner, "b", dependencies=[str(a.pk)])
    make_task(owner, "c", dependencies=[str(b.pk)])
    c = Task.objects.get(title="c")
    # when
    with pytest.raises(InvalidInput) as rejected:
        task_services.update_task(owner.agent, a, UpdateTask.parse({"dependencies": [str(c.pk)]}))
    # then
    assert rejected.value.field == "dependencies"
    assert list(a.dependencies.all()) == []
    with pytest.raises(InvalidInput):
        task_services.update_task(owner.agent, a, UpdateTask.parse({"dependencies": [str(a.pk)]}))


@pytest.mark.parametrize(
    ("actor", "may_change", "may_delete"),
    [
        ("owner", True, True),
        ("assignee", True, False),
        ("ns_admin", True, True),
        ("admin", True, True),
        ("member", False, False),
        ("outsider", False, False),
    ],
)
@pytest.mark.django_db
def test_who_may_change_and_delete_a_task(team, make_task, actor, may_change, may_delete):
    # given: the owner's task, assigned to the squad agent
    team = dict(team, assignee=team["descendant"])
    task = make_task(team["owner"], assigned_agent_id="squad-agent")
    agent = team[actor].agent
    # when / then
    if may_change:
        assert task_services.update_task(agent, task, UpdateTask.parse({"priority": "critical"})).priority == "critical"
    else:
        with pytest.raises(Forbidden):
            task_services.update_task(agent, task, UpdateTask.parse({"priority": "critical"}))
        with pytest.raises(Forbidden):
            task_services.assign_task(agent, task, assigning("member-agent"))
        with pytest.raises(Forbidden):
            task_services.update_task_status(agent, task, moving_to("in_progress"))
    if may_delete:
        task_services.delete_task(agent, task)
        assert not Task.objects.filter(pk=task.pk).exists()
    else:
        with pytest.raises(Forbidden):
            task_services.delete_task(agent, task)
        task.refresh_from_db()
        assert task.assigned_agent.agent_id == "squad-agent"
        assert task.status == "pending"
        assert task.priority == ("critical" if may_change else "medium")


@pytest.mark.django_db
def test_assign_task_validates_the_agent(team, make_task):
    # given
    owner = team["owner"]
    task = make_task(owner)
    # when
    with pytest.raises(InvalidInput) as rejected:
        task_services.assign_task(owner.agent, task, assigning("outsider-agent"))
    # then
    assert rejected.value.field == "agent_id"
    assert task_services.assign_task(owner.agent, task, assigning("member-agent")).assigned_agent.agent_id == "member-agent"
    assert task_services.assign_task(owner.agent, task, assigning(None)).assigned_agent is None


@pytest.mark.django_db
def test_a_task_others_wait_on_cannot_be_deleted(team, make_task):
    # given
    owner = team["owner"]
    first = make_task(owner, "first")
    make_task(owner, "second", dependencies=[str(first.pk)])
    # when
    with pytest.raises(Conflict) as refused:
        task_services.delete_task(owner.agent, first)
    # then
    assert refused.value.code == "has_dependents"
    assert Task.objects.filter(pk=first.pk).exists()
