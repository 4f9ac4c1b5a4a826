"""MCP tools for tasks (create, list, assign, report progress and complete) and workflows (create, list, run,
read a run, cancel it).

These are also the persona-era task tools of the same names: `create_task` accepts
`assigned_persona_id`, `assign_task` accepts `persona_id`, `list_tasks` accepts
`assigned_persona_id`, and `update_task_status` accepts `error_message` (persona name ==
agent_id; compat provides the lookup through core.extensions).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

import access
from agents.models import Agent
from core import extensions
from core.errors import InvalidInput
from core.tools import agent_tool, filtered, render_json

from . import runs, task_services, workflow_services
from .choices import WorkflowDefinitionStatus, WorkflowType
from .contracts import AssignTask, CompleteTask, CreateTask, StartRun, UpdateTaskStatus
from .definitions import CreateWorkflow
from .filters import TaskFilter, WorkflowFilter
from .models import Task, TaskPriority, TaskStatus, Workflow

StatusName = Literal[tuple(TaskStatus.values)]
PriorityName = Literal[tuple(TaskPriority.values)]
TaskId = Annotated[str, Field(description="The task's UUID, as returned by create_task or list_tasks.")]
WorkflowId = Annotated[str, Field(description="The workflow's UUID, as returned by create_workflow or list_workflows.")]
RunId = Annotated[str, Field(description="The run's UUID, as returned by run_workflow.")]
DefinitionStatusName = Literal[tuple(WorkflowDefinitionStatus.values)]
WorkflowTypeName = Literal[tuple(WorkflowType.values)]
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


# --- Workflows ---------------------------------------------------------------------------------

def render_workflows(workflows) -> list[dict]:
    """Workflows in the REST API's shape (GET /api/v2/workflows/{id})."""
    from .api.serializers import WorkflowSerializer

    return render_json(WorkflowSerializer(workflows, many=True).data)


def render_run(agent: Agent, run, *, steps: bool = True) -> dict:
    """A run in the REST API's shape (GET /api/v2/workflows/{id}/runs/{run_id}); outputs only for its runner."""
    from .api.serializers import WorkflowRunDetailSerializer, WorkflowRunSerializer

    serializer = WorkflowRunDetailSerializer if steps else WorkflowRunSerializer
    return render_json(serializer(run, context={"principal": access.Principal.of(agent)}).data)


@agent_tool(
    title="Create a workflow",
    description="Create a workflow in a namespace you may write to (your home namespace by default): named steps, "
    "each an action (create_task, assign_task, update_task_status, store_memory, search_memories, wait, agent_task) "
    "with its params, optional depends_on, when, retries, retry_backoff_seconds, timeout_seconds and on_failure. "
    "Steps are checked up front. Example: "
    '{"name": "Review", "workflow_type": "parallel", "status": "active", "steps": [{"name": "review", '
    '"action": "agent_task", "params": {"title": "Review {{ input.pr }}", "capability": {"review": true}}}, '
    '{"name": "note", "action": "store_memory", "params": {"content": "Reviewed: {{ steps.review.result.verdict }}"}}]}.',
)
def create_workflow(agent: Agent, data: CreateWorkflow) -> dict[str, Any]:
    return render_workflows([workflow_services.create_workflow(agent, data)])[0]


@agent_tool(
    title="List workflows",
    read_only=True,
    description="List the workflows you may read (yours and those of namespaces you read), newest first. "
    'Example: {"status": "active", "namespace": "team-alpha"}.',
)
def list_workflows(
    agent: Agent,
    status: Annotated[DefinitionStatusName | None, Field(description="Only workflows in this status.")] = None,
    workflow_type: Annotated[WorkflowTypeName | None, Field(description="Only workflows of this type.")] = None,
    namespace: Annotated[str | None, Field(description="Only workflows in this namespace.")] = None,
    tag: Annotated[str | None, Field(description="Only workflows carrying this tag.")] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_LIST, description="At most this many workflows.")] = 50,
) -> dict[str, Any]:
    workflows = Workflow.objects.visible_to(agent).select_related("created_by", "namespace").order_by("-created_at")
    workflows = filtered(WorkflowFilter, workflows, status=status, workflow_type=workflow_type, namespace=namespace,
                         tag=tag)
    found = render_workflows(workflows[: limit + 1])
    return {"results": found[:limit], "count": len(found[:limit]), "truncated": len(found) > limit}


@agent_tool(
    title="Run a workflow",
    description="Start a run of a workflow you may read, as yourself (it can do only what you could do by hand). "
    "It answers at once with the pending run; read it with get_workflow_run. "
    'Example: {"workflow_id": "<uuid>", "input": {"pr": "#42"}}.',
)
def run_workflow(agent: Agent, workflow_id: WorkflowId, data: StartRun) -> dict[str, Any]:
    workflow = workflow_services.get_visible_workflow(agent, workflow_id)
    return render_run(agent, runs.start_workflow_run(agent, workflow, data), steps=False)


@agent_tool(
    title="Get a workflow run",
    read_only=True,
    description="Read a run you started (or of a workflow you manage) with its step runs: status, times, attempts, "
    "errors, and the outputs if you started it. Example: {\"run_id\": \"<uuid>\"}.",
)
def get_workflow_run(agent: Agent, run_id: RunId) -> dict[str, Any]:
    return render_run(agent, runs.get_visible_run(agent, None, run_id))


@agent_tool(
    title="Cancel a workflow run",
    destructive=True,
    description="Cancel a pending or running run you started (or of a workflow you manage): its waiting steps stop "
    "and the tasks they opened are cancelled. Example: {\"run_id\": \"<uuid>\"}.",
)
def cancel_workflow_run(agent: Agent, run_id: RunId) -> dict[str, Any]:
    run = runs.get_visible_run(agent, None, run_id)
    return render_run(agent, runs.cancel_workflow_run(agent, run))
