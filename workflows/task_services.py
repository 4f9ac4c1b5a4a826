"""State changes on tasks. Every write checks access first.

Callers: the REST API (workflows.api), the MCP tools, the admin, the workflow actions
(workflows.actions) and the v1 compatibility layer, each passing the operation's parsed contract
(workflows.contracts): types, limits and choices are checked there, and only what needs the
database (namespaces, agents, dependencies, transitions) is checked here. Errors are core.errors
exceptions naming the field at fault; a refused call changes nothing.

This module knows nothing of runs but one thing: a task an agent_task step opened wakes that step
when it reaches a final status or is deleted (`_wake_waiting_step`), through workflows.dispatch.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

import access
from agents.models import Agent
from agents.services import get_agent
from core.errors import Conflict, Forbidden, InvalidInput
from core.models import find_visible
from memories.services import clean_owned_metadata
from memories.usage import track_task_use
from namespaces.models import Namespace
from namespaces.services import get_namespace

from . import dispatch
from .choices import StepStatus
from .contracts import AssignTask, CompleteTask, CreateTask, UpdateTask, UpdateTaskStatus
from .models import RunStatus, StepRun, Task, TaskStatus, WorkflowRun

TERMINAL_TASK_STATUSES = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED}
# Which status a task may move to from each status. Completed, cancelled and skipped tasks are
# final; a failed task may be retried (back to pending or in_progress) while retries remain.
TASK_TRANSITIONS = {
    TaskStatus.PENDING: {TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED, TaskStatus.FAILED,
                         TaskStatus.CANCELLED, TaskStatus.SKIPPED},
    TaskStatus.IN_PROGRESS: {TaskStatus.IN_PROGRESS, TaskStatus.PENDING, TaskStatus.COMPLETED, TaskStatus.FAILED,
                             TaskStatus.CANCELLED},
    TaskStatus.FAILED: {TaskStatus.PENDING, TaskStatus.IN_PROGRESS},
    TaskStatus.COMPLETED: set(),
    TaskStatus.CANCELLED: set(),
    TaskStatus.SKIPPED: set(),
}
# Statuses that need every dependency completed first.
STATUSES_AFTER_DEPENDENCIES = {TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED}


def namespace_for_create(actor, slug: str | None) -> Namespace:
    """The namespace a new task or workflow goes into: the named one, or the calling agent's home."""
    principal = access.Principal.of(actor)
    if slug is None and principal.agent is not None:
        namespace = principal.agent.namespace
    else:
        namespace = get_namespace(slug)
    allowed, reason = access.can_create_in_namespace(principal, namespace)
    if not allowed:
        raise Forbidden(reason, field="namespace")
    return namespace


# --- Tasks ----------------------------------------------------------------------------------

def get_visible_task(actor, task_id) -> Task:
    """A task the actor may read, or NotFound (hidden and missing look the same)."""
    visible = Task.objects.visible_to(actor).select_related("assigned_agent", "created_by", "namespace")
    return find_visible(visible, task_id, "Task")


def _assignee(task: Task, agent_id: str | None) -> Agent | None:
    if agent_id in (None, ""):
        return None
    agent = get_agent(agent_id, field="assigned_agent_id")
    if not access.can_be_assigned(agent, task):
        reason = "is inactive" if not agent.is_active else f"cannot read namespace '{task.namespace}'"
        raise InvalidInput(f"Agent '{agent_id[:128]}' {reason}; it cannot take this task.", field="assigned_agent_id")
    return agent


def _dependencies(actor, task: Task, ids) -> list[Task]:
    """The visible tasks named by `ids` (distinct UUIDs), refusing the task itself and anything that waits on it."""
    if not ids:
        return []
    found = {t.pk: t for t in Task.objects.visible_to(actor).filter(pk__in=ids)}
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise InvalidInput(f"dependencies names no task you can see: {missing[0]}.", field="dependencies")
    if not task._state.adding and task.pk in found:
        raise InvalidInput("A task cannot depend on itself.", field="dependencies")
    if not task._state.adding and set(found) & _dependents_of(task):
        raise InvalidInput("These dependencies would form a cycle.", field="dependencies")
    return [found[pk] for pk in ids]


def _dependents_of(task: Task) -> set:
    """Every task that waits on `task`, directly or through others."""
    through = Task.dependencies.through
    seen: set = set()
    frontier = {task.pk}
    while frontier:
        frontier = set(
            through.objects.filter(to_task_id__in=frontier).values_list("from_task_id", flat=True)
        ) - seen
        seen |= frontier
    return seen


@transaction.atomic
def create_task(actor, data: CreateTask) -> Task:
    """Create a task in a namespace the actor may write to (an agent's home namespace by default)."""
    principal = access.Principal.of(actor)
    task = Task(
        title=data.title,
        description=data.description,
        task_type=data.task_type,
        priority=data.priority,
        tags=list(data.tags),
        metadata=clean_owned_metadata(actor, dict(data.metadata), kind="task"),
        due_at=data.due_at,
        max_retries=data.max_retries,
        created_by=principal.agent,
    )
    task.namespace = namespace_for_create(principal, data.namespace)
    task.assigned_agent = _assignee(task, data.assigned_agent_id)
    dependencies = _dependencies(principal, task, data.dependencies)
    task.save()
    task.dependencies.set(dependencies)
    if data.status != TaskStatus.PENDING:
        _move_to(task, data.status)
        task.save()
    track_task_use(actor, task.metadata)
    return task


# Fields an update sets as given (the contract has cleaned them).
_PLAIN_TASK_FIELDS = ("title", "description", "task_type", "priority", "due_at", "max_retries")
_STATUS_FIELDS = {"status", "progress", "result", "error"}


@transaction.atomic
def update_task(actor, task: Task, data: UpdateTask) -> Task:
    """Change the fields `data` gives; status, progress, result and error follow update_task_status's rules."""
    if not access.can_change_task(actor, task):
        raise Forbidden("You may read this task but not change it.")
    principal = access.Principal.of(actor)
    changes = data.given()
    for name in _PLAIN_TASK_FIELDS:
        if name in changes:
            setattr(task, name, changes[name])
    if "tags" in changes:
        task.tags = list(data.tags)
    if "metadata" in changes:
        task.metadata = clean_owned_metadata(actor, dict(data.metadata), task.metadata, "task")
        track_task_use(actor, task.metadata)
    if "namespace" in changes:
        if data.namespace is None:
            raise InvalidInput("A task's namespace cannot be removed.", field="namespace")
        task.namespace = namespace_for_create(principal, data.namespace)
    if "assigned_agent_id" in changes:
        task.assigned_agent = _assignee(task, data.assigned_agent_id)
    if "dependencies" in changes:
        task.dependencies.set(_dependencies(principal, task, data.dependencies))
    task.save()
    if _STATUS_FIELDS & set(changes):
        _apply_status(task, data.status if "status" in changes else task.status,
                      progress=data.progress, result=data.result, error=data.error)
        task.save()
    return task


@transaction.atomic
def assign_task(actor, task: Task, data: AssignTask) -> Task:
    """Give a task to an agent that can read its namespace (no agent_id unassigns it)."""
    if not access.can_change_task(actor, task):
        raise Forbidden("You may read this task but not assign it.")
    try:
        task.assigned_agent = _assignee(task, data.agent_id)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="agent_id") from exc
    task.save(update_fields=["assigned_agent", "updated_at"])
    return task


def _incomplete_dependencies(task: Task) -> list[str]:
    return [str(pk) for pk in task.dependencies.exclude(status=TaskStatus.COMPLETED).values_list("pk", flat=True)]


def _move_to(task: Task, status: str) -> None:
    """Set `status` after checking the transition, dependencies and retries; keep the timestamps right."""
    current = task.status
    if status not in TASK_TRANSITIONS[current]:
        raise Conflict(
            f"A {current} task cannot become {status}.", field="status", code="invalid_transition"
        )
    if status in STATUSES_AFTER_DEPENDENCIES and status != current:
        waiting = _incomplete_dependencies(task)
        if waiting:
            raise InvalidInput(
                f"The task cannot become {status}: {len(waiting)} of its dependencies "
                f"{'is' if len(waiting) == 1 else 'are'} not completed ({', '.join(waiting[:5])}).",
                field="dependencies",
                code="dependencies_incomplete",
            )
    if current == TaskStatus.FAILED and status != current:
        if task.retry_count >= task.max_retries:
            raise Conflict(
                f"The task has been retried {task.retry_count} times; max_retries is {task.max_retries}.",
                field="status",
                code="retries_exhausted",
            )
        task.retry_count += 1
        task.error = ""
    now = timezone.now()
    if status == TaskStatus.IN_PROGRESS and current != TaskStatus.IN_PROGRESS:
        task.started_at = now
    if status == TaskStatus.PENDING:
        task.started_at = None
    if status in TERMINAL_TASK_STATUSES:
        task.completed_at = now
    else:
        task.completed_at = None
    if status == TaskStatus.COMPLETED:
        task.progress = 1.0
    if status in TERMINAL_TASK_STATUSES and status != current:
        _wake_waiting_step(task)
    task.status = status


def _wake_waiting_step(task: Task) -> None:
    """A task an agent_task step waits on has ended (or goes): wake that step once this transaction commits.

    The run's wake time is set too, so the sweep resumes the step should the message be lost.
    """
    if task.pk is None:
        return
    waiting = [str(pk) for pk in StepRun.objects.filter(task_id=task.pk, status=StepStatus.WAITING)
               .values_list("pk", flat=True)]
    if not waiting:
        return
    WorkflowRun.objects.filter(status=RunStatus.RUNNING, step_runs__pk__in=waiting).update(wake_at=timezone.now())
    for step_run_id in waiting:
        dispatch.send_on_commit(dispatch.RESUME_STEP, step_run_id)


def _apply_status(task: Task, status: str, *, progress=None, result=None, error=None) -> None:
    """Move to `status` and record what is not None of progress, result and error (values already checked)."""
    if status == task.status and task.status in TERMINAL_TASK_STATUSES:
        raise Conflict(f"The task is already {status}.", field="status", code="invalid_transition")
    _move_to(task, status)
    if progress is not None:
        task.progress = progress
    if result is not None:
        task.result = result
    if error is not None:
        task.error = error


@transaction.atomic
def update_task_status(actor, task: Task, data: UpdateTaskStatus) -> Task:
    """Move a task to `data.status` (with optional progress 0-1, result and error).

    in_progress sets started_at; completed, failed, cancelled and skipped set completed_at. A
    task cannot start or complete while a dependency is not completed.
    """
    if not access.can_change_task(actor, task):
        raise Forbidden("You may read this task but not change its status.")
    task = (
        Task.objects.select_for_update(of=("self",))
        .select_related("assigned_agent", "created_by", "namespace")
        .get(pk=task.pk)
    )
    _apply_status(task, data.status, progress=data.progress, result=data.result, error=data.error)
    task.save()
    return task


def complete_task(actor, task: Task, data: CompleteTask | None = None) -> Task:
    """Mark a task completed, recording its result."""
    result = data.result if data is not None else None
    return update_task_status(actor, task, UpdateTaskStatus(status=TaskStatus.COMPLETED.value, result=result))


@transaction.atomic
def delete_task(actor, task: Task) -> None:
    """Delete a task; refused while unfinished tasks still wait on it."""
    if not access.can_delete_task(actor, task):
        raise Forbidden("Only the task's creator, its namespace's admins and operators may delete it.")
    waiting = task.dependents.exclude(status__in=TERMINAL_TASK_STATUSES).count()
    if waiting:
        raise Conflict(
            f"{waiting} unfinished task{'s' if waiting != 1 else ''} depend on this task; "
            "remove the dependency or finish them first.",
            code="has_dependents",
        )
    _wake_waiting_step(task)
    task.delete()
