"""MCP tools for tasks: create, list, assign, report progress and complete.

These are also the persona-era task tools of the same names: `create_task` accepts
`assigned_persona_id`, `assign_task` accepts `persona_id`, `list_tasks` accepts
`assigned_persona_id`, and `update_task_status` accepts `error_message` (persona name ==
agent_id; compat provides the lookup through core.extensions).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from agents.models import Agent
from core import extensions
from core.errors import InvalidInput
from core.tools import agent_tool, filtered, render_json

from . import task_services
from .contracts import AssignTask, CompleteTask, CreateTask, UpdateTaskStatus
from .filters import TaskFilter
from .models import Task, TaskPriority, TaskStatus

StatusName = Literal[tuple(TaskStatus.values)]
PriorityName = Literal[tuple(TaskPriority.values)]
TaskId = Annotated[str, Field(description="The task's UUID, as returned by create_task or list_tasks.")]
MAX_LIST = 200


def render_task(task: Task) -> dict:
    """A task in the REST API's shape (GET /api/v2/tasks/{id}), plus the persona-era assignee name."""
    return render_tasks([task])[0]


def render_tasks(tasks) -> list[dict]:
    """Tasks as render_task shows them, through one serializer for the lot."""
    from .api.serializers import TaskSerializer

    rendered = render_json(TaskSerializer(tasks, many=True).data)
    for data in rendered:
        data["assigned_persona_id"] = data.get("assigned_agent_id")
    return rendered


def _agent_id_for(persona_id: str | None, agent_id: str | None, field: str) -> str | None:
    """The agent_id a v2 `agent_id` or a persona-era persona reference names (never both)."""
    if persona_id in (None, ""):
        return agent_id
    if agent_id not in (None, ""):
        raise InvalidInput(f"Give the agent id or the persona-era {field}, not both.", field=field)
    return extensions.call("persona_agent", persona_id, field=field).agent_id


@agent_tool(
    title="Create a task",
    description="Create a task in a namespace you may write to (your home namespace by default), optionally assigned "
    "to an agent that can read that namespace and ordered after other tasks. Persona-era callers may pass "
    "assigned_persona_id instead of assigned_agent_id. "
    'Example: {"title": "Review the EU rollout plan", "priority": "high", "assigned_agent_id": "reviewer-bot"}.',
)
def create_task(
    agent: Agent,
    data: CreateTask,
    assigned_persona_id: Annotated[str | None, Field(description="Persona-era: the persona (name) to assign.")] = None,
) -> dict[str, Any]:
    if assigned_persona_id not in (None, ""):
        assignee = _agent_id_for(assigned_persona_id, data.assigned_agent_id, "assigned_persona_id")
        data = data.model_copy(update={"assigned_agent_id": assignee})
    return render_task(task_services.create_task(agent, data))


@agent_tool(
    title="List tasks",
    read_only=True,
    description="List the tasks you may read (yours, assigned to you, and those of namespaces you read), newest "
    'first. Example: {"status": "pending", "assigned_to_me": true}.',
)
def list_tasks(
    agent: Agent,
    status: Annotated[StatusName | None, Field(description="Only tasks in this status.")] = None,
    priority: Annotated[PriorityName | None, Field(description="Only tasks of this priority.")] = None,
    namespace: Annotated[str | None, Field(description="Only tasks in this namespace.")] = None,
    assigned_agent_id: Annotated[str | None, Field(description="Only tasks assigned to this agent.")] = None,
    assigned_to_me: Annotated[bool, Field(description="Only tasks assigned to you.")] = False,
    task_type: Annotated[str | None, Field(description="Only tasks of this type.")] = None,
    tag: Annotated[str | None, Field(description="Only tasks carrying this tag.")] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_LIST, description="At most this many tasks.")] = 50,
    assigned_persona_id: Annotated[str | None, Field(description="Persona-era name of assigned_agent_id.")] = None,
) -> dict[str, Any]:
    tasks = (
        Task.objects.visible_to(agent)
        .select_related("assigned_agent", "created_by", "namespace")
        .prefetch_related("dependencies")
        .order_by("-created_at")
    )
    assignee = _agent_id_for(assigned_persona_id, assigned_agent_id, "assigned_persona_id")
    if assigned_to_me:
        tasks = tasks.filter(assigned_agent=agent)
    tasks = filtered(TaskFilter, tasks, assigned_agent_id=assignee, status=status, priority=priority,
                     namespace=namespace, task_type=task_type, tag=tag)
    found = render_tasks(tasks[: limit + 1])
    return {"results": found[:limit], "count": len(found[:limit]), "truncated": len(found) > limit}


@agent_tool(
    title="Get a task",
    read_only=True,
    description='Read one task by id; a task you may not read answers "not found". Example: {"task_id": "<uuid>"}.',
)
def get_task(agent: Agent, task_id: TaskId) -> dict[str, Any]:
    return render_task(task_services.get_visible_task(agent, task_id))


@agent_tool(
    title="Assign a task",
    description="Give a task you may change (you created it, it is assigned to you, or you administer its namespace) "
    "to an agent that can read its namespace; an empty agent_id unassigns it. Persona-era callers pass persona_id. "
    'Example: {"task_id": "<uuid>", "agent_id": "reviewer-bot"}.',
)
def assign_task(
    agent: Agent,
    task_id: TaskId,
    agent_id: Annotated[str | None, Field(description="The agent to assign; empty string unassigns.")] = None,
    persona_id: Annotated[str | None, Field(description="Persona-era: the persona (name == agent_id) to assign.")] = None,
) -> dict[str, Any]:
    if agent_id is None and persona_id in (None, ""):
        raise InvalidInput("Give agent_id (or the persona-era persona_id); an empty agent_id unassigns.",
                           field="agent_id")
    target = _agent_id_for(persona_id, agent_id, "persona_id")
    data = AssignTask.parse({"agent_id": target or None})
    task = task_services.get_visible_task(agent, task_id)
    return render_task(task_services.assign_task(agent, task, data))


@agent_tool(
    title="Update task status",
    description="Move a task you may change to a new status, with optional progress (0-1), result and error. "
    "Completed, cancelled and skipped are final; a task cannot start or complete before its dependencies. "
    'Example: {"task_id": "<uuid>", "status": "in_progress", "progress": 0.3}.',
)
def update_task_status(
    agent: Agent,
    task_id: TaskId,
    data: UpdateTaskStatus,
    error_message: Annotated[str | None, Field(description="Persona-era name of error.")] = None,
) -> dict[str, Any]:
    if error_message is not None:
        if data.error is not None:
            raise InvalidInput("Give error or the persona-era error_message, not both.", field="error_message")
        data = UpdateTaskStatus.parse({**data.given(), "error": error_message})
    task = task_services.get_visible_task(agent, task_id)
    return render_task(task_services.update_task_status(agent, task, data))


@agent_tool(
    title="Complete a task",
    description="Mark a task you may change as completed, recording its result. "
    'Example: {"task_id": "<uuid>", "result": {"summary": "Plan approved"}}.',
)
def complete_task(agent: Agent, task_id: TaskId, data: CompleteTask) -> dict[str, Any]:
    task = task_services.get_visible_task(agent, task_id)
    return render_task(task_services.complete_task(agent, task, data))
