"""State changes on tasks, workflows and workflow runs. Every write checks access first.

Callers: the REST API (workflows.api), the MCP tools and the v1 compatibility layer. Errors are
core.errors exceptions naming the field at fault; a refused call changes nothing.
"""
from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

import access
from agents.models import Agent
from agents.services import get_agent
from core import validation
from core.errors import Conflict, Forbidden, InvalidInput
from core.models import find_visible
from memories.services import clean_owned_metadata
from namespaces.models import Namespace
from namespaces.services import get_namespace

from .models import (
    Task,
    TaskPriority,
    TaskStatus,
    Workflow,
    WorkflowStatus,
    WorkflowType,
)
from .steps import clean_steps

MAX_TITLE_LENGTH = 255
MAX_TEXT_LENGTH = 50_000
MAX_TYPE_LENGTH = 64
MAX_DEPENDENCIES = 100
MAX_RETRIES_LIMIT = 100

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

TASK_CREATE_FIELDS = {
    "title", "description", "task_type", "priority", "status", "namespace", "assigned_agent_id", "dependencies",
    "tags", "metadata", "due_at", "max_retries",
}
TASK_UPDATE_FIELDS = (TASK_CREATE_FIELDS | {"progress", "result", "error"})
WORKFLOW_FIELDS = {"name", "description", "workflow_type", "status", "steps", "config", "tags", "namespace", "metadata"}
# A workflow's own status describes the definition; runs carry their own status.
WORKFLOW_DEFINITION_STATUSES = (WorkflowStatus.DRAFT, WorkflowStatus.ACTIVE, WorkflowStatus.INACTIVE)


# --- Validation of single values ------------------------------------------------------------

def _clean_progress(value) -> float:
    return validation.number(value, "progress", 0.0, 1.0)


def _parse_uuid(value, field: str) -> uuid.UUID:
    return validation.uuid_value(value, field, message=f"{field} must hold UUIDs.")


def _reject_unknown(data, allowed: set[str], what: str) -> None:
    if not isinstance(data, dict):
        raise InvalidInput(f"The {what} must be a JSON object.")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(f"Unknown field '{str(unknown[0])[:64]}'.", field=str(unknown[0])[:64])


def _namespace_for_create(actor, slug) -> Namespace:
    """The namespace a new task or workflow goes into: the named one, or the calling agent's home."""
    principal = access.Principal.of(actor)
    if slug in (None, "") and principal.agent is not None:
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


def _assignee(task: Task, agent_id) -> Agent | None:
    if agent_id in (None, ""):
        return None
    agent = get_agent(agent_id, field="assigned_agent_id")
    if not access.can_be_assigned(agent, task):
        reason = "is inactive" if not agent.is_active else f"cannot read namespace '{task.namespace}'"
        raise InvalidInput(f"Agent '{agent_id[:128]}' {reason}; it cannot take this task.", field="assigned_agent_id")
    return agent


def _dependencies(actor, task: Task, values) -> list[Task]:
    """The visible tasks named by `values`, refusing the task itself and anything that waits on it."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise InvalidInput("dependencies must be a list of task ids.", field="dependencies")
    if len(values) > MAX_DEPENDENCIES:
        raise InvalidInput(f"A task has at most {MAX_DEPENDENCIES} dependencies.", field="dependencies")
    ids = list(dict.fromkeys(_parse_uuid(value, "dependencies") for value in values))
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
def create_task(actor, data: dict) -> Task:
    """Create a task in a namespace the actor may write to (an agent's home namespace by default)."""
    _reject_unknown(data, TASK_CREATE_FIELDS, "task")
    principal = access.Principal.of(actor)
    task = Task(
        title=validation.text(data.get("title"), "title", max_length=MAX_TITLE_LENGTH, required=True),
        description=validation.text(data.get("description"), "description", max_length=MAX_TEXT_LENGTH),
        task_type=validation.text(data.get("task_type"), "task_type", max_length=MAX_TYPE_LENGTH, default="general"),
        priority=validation.choice(data.get("priority", TaskPriority.MEDIUM), TaskPriority.values, "priority"),
        tags=validation.tags(data.get("tags"), "tags"),
        metadata=clean_owned_metadata(actor, data.get("metadata"), kind="task"),
        due_at=validation.datetime_value(data.get("due_at"), "due_at"),
        max_retries=validation.integer(data.get("max_retries", 3), "max_retries", 0, MAX_RETRIES_LIMIT),
        created_by=principal.agent,
    )
    status = validation.choice(data.get("status", TaskStatus.PENDING), TaskStatus.values, "status")
    task.namespace = _namespace_for_create(principal, data.get("namespace"))
    task.assigned_agent = _assignee(task, data.get("assigned_agent_id"))
    dependencies = _dependencies(principal, task, data.get("dependencies"))
    task.save()
    task.dependencies.set(dependencies)
    if status != TaskStatus.PENDING:
        _move_to(task, status)
        task.save()
    return task


@transaction.atomic
def update_task(actor, task: Task, changes: dict) -> Task:
    """Change a task's fields; status, progress, result and error follow update_task_status's rules."""
    if not access.can_change_task(actor, task):
        raise Forbidden("You may read this task but not change it.")
    _reject_unknown(changes, TASK_UPDATE_FIELDS, "change")
    principal = access.Principal.of(actor)
    if "title" in changes:
        task.title = validation.text(changes["title"], "title", max_length=MAX_TITLE_LENGTH, required=True)
    if "description" in changes:
        task.description = validation.text(changes["description"], "description", max_length=MAX_TEXT_LENGTH)
    if "task_type" in changes:
        task.task_type = validation.text(changes["task_type"], "task_type", max_length=MAX_TYPE_LENGTH, default="general")
    if "priority" in changes:
        task.priority = validation.choice(changes["priority"], TaskPriority.values, "priority")
    if "tags" in changes:
        task.tags = validation.tags(changes["tags"], "tags")
    if "metadata" in changes:
        task.metadata = clean_owned_metadata(actor, changes["metadata"], task.metadata, "task")
    if "due_at" in changes:
        task.due_at = validation.datetime_value(changes["due_at"], "due_at")
    if "max_retries" in changes:
        task.max_retries = validation.integer(changes["max_retries"], "max_retries", 0, MAX_RETRIES_LIMIT)
    if "namespace" in changes:
        if changes["namespace"] in (None, ""):
            raise InvalidInput("A task's namespace cannot be removed.", field="namespace")
        task.namespace = _namespace_for_create(principal, changes["namespace"])
    if "assigned_agent_id" in changes:
        task.assigned_agent = _assignee(task, changes["assigned_agent_id"])
    if "dependencies" in changes:
        task.dependencies.set(_dependencies(principal, task, changes["dependencies"]))
    task.save()
    if {"status", "progress", "result", "error"} & set(changes):
        _apply_status(
            task,
            changes.get("status", task.status),
            progress=changes.get("progress"),
            result=changes.get("result"),
            error=changes.get("error"),
        )
        task.save()
    return task


@transaction.atomic
def assign_task(actor, task: Task, agent_id: str) -> Task:
    """Give a task to an agent that can read its namespace (an empty agent_id unassigns it)."""
    if not access.can_change_task(actor, task):
        raise Forbidden("You may read this task but not assign it.")
    if agent_id is not None and not isinstance(agent_id, str):
        raise InvalidInput("agent_id must be an agent id.", field="agent_id")
    try:
        task.assigned_agent = _assignee(task, agent_id)
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
    task.status = status


def _apply_status(task: Task, status, *, progress=None, result=None, error=None) -> None:
    status = validation.choice(status, TaskStatus.values, "status")
    if progress is not None:
        progress = _clean_progress(progress)
    if error is not None:
        error = validation.text(error, "error", max_length=MAX_TEXT_LENGTH)
    if result is not None:
        result = validation.json_value(result, "result")
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
def update_task_status(actor, task: Task, status: str, *, progress=None, result=None, error=None) -> Task:
    """Move a task to `status` (with optional progress 0-1, result and error).

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
    _apply_status(task, status, progress=progress, result=result, error=error)
    task.save()
    return task


def complete_task(actor, task: Task, result=None) -> Task:
    """Mark a task completed, recording its result."""
    return update_task_status(actor, task, TaskStatus.COMPLETED, result=result)


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
    task.delete()


# --- Workflows ------------------------------------------------------------------------------

def get_visible_workflow(actor, workflow_id) -> Workflow:
    """A workflow the actor may read, or NotFound."""
    return find_visible(Workflow.objects.visible_to(actor).select_related("created_by", "namespace"), workflow_id,
                        "Workflow")


@transaction.atomic
def create_workflow(actor, data: dict) -> Workflow:
    """Create a workflow; its steps are validated (actions, names, dependencies, cycles) up front."""
    _reject_unknown(data, WORKFLOW_FIELDS, "workflow")
    principal = access.Principal.of(actor)
    workflow_type = validation.choice(
        data.get("workflow_type", WorkflowType.SEQUENTIAL), WorkflowType.values, "workflow_type"
    )
    workflow = Workflow(
        name=validation.text(data.get("name"), "name", max_length=MAX_TITLE_LENGTH, required=True),
        description=validation.text(data.get("description"), "description", max_length=MAX_TEXT_LENGTH),
        workflow_type=workflow_type,
        status=validation.choice(data.get("status", WorkflowStatus.DRAFT), WORKFLOW_DEFINITION_STATUSES, "status"),
        steps=clean_steps(data.get("steps"), workflow_type),
        config=validation.json_object(data.get("config"), "config"),
        tags=validation.tags(data.get("tags"), "tags"),
        metadata=clean_owned_metadata(actor, data.get("metadata"), kind="workflow"),
        created_by=principal.agent,
    )
    workflow.namespace = _namespace_for_create(principal, data.get("namespace"))
    workflow.save()
    return workflow


@transaction.atomic
def update_workflow(actor, workflow: Workflow, changes: dict) -> Workflow:
    """Change a workflow; runs already started keep the steps they started with."""
    if not access.can_change_workflow(actor, workflow):
        raise Forbidden("You may read this workflow but not change it.")
    _reject_unknown(changes, WORKFLOW_FIELDS, "change")
    if "name" in changes:
        workflow.name = validation.text(changes["name"], "name", max_length=MAX_TITLE_LENGTH, required=True)
    if "description" in changes:
        workflow.description = validation.text(changes["description"], "description", max_length=MAX_TEXT_LENGTH)
    if "status" in changes:
        workflow.status = validation.choice(changes["status"], WORKFLOW_DEFINITION_STATUSES, "status")
    if "workflow_type" in changes:
        workflow.workflow_type = validation.choice(changes["workflow_type"], WorkflowType.values, "workflow_type")
    if "steps" in changes or "workflow_type" in changes:
        workflow.steps = clean_steps(changes.get("steps", workflow.steps), workflow.workflow_type)
    if "config" in changes:
        workflow.config = validation.json_object(changes["config"], "config")
    if "tags" in changes:
        workflow.tags = validation.tags(changes["tags"], "tags")
    if "metadata" in changes:
        workflow.metadata = clean_owned_metadata(actor, changes["metadata"], workflow.metadata, "workflow")
    if "namespace" in changes:
        if changes["namespace"] in (None, ""):
            raise InvalidInput("A workflow's namespace cannot be removed.", field="namespace")
        workflow.namespace = _namespace_for_create(actor, changes["namespace"])
    workflow.save()
    return workflow


@transaction.atomic
def delete_workflow(actor, workflow: Workflow) -> None:
    """Delete a workflow and its finished runs; refused while a run is pending or running."""
    if not access.can_change_workflow(actor, workflow):
        raise Forbidden("You may read this workflow but not delete it.")
    if workflow.runs.unfinished().exists():
        raise Conflict("The workflow has unfinished runs; cancel them first.", code="has_active_runs")
    workflow.delete()
