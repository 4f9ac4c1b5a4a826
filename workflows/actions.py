"""The one registry of workflow actions: each declared once, with its params, its handler and whether it waits.

An action's `params` is the contract its step's params are checked against (when the workflow is
saved, and again once references are resolved, when the step runs); its `start` does the work, as
the principal that started the run and through the same services as the API; an action that waits
also has a `finish`, which says how the step ends once what it waits for has come (a time, the end
of the task it opened). workflows.definitions builds the step contracts from this registry, and the
engine runs steps through it.

Imports run one way: runs -> tasks (Celery) -> engine -> actions -> task services.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q

import access
from access import Principal
from agents.models import Agent
from core.contracts import Contract
from core.errors import InvalidInput
from memories import search as memory_search
from memories import services as memory_services
from memories.contracts import SearchMemories, StoreMemory
from namespaces.models import Namespace

from . import task_services
from .choices import OPEN_TASK_STATUSES, STEP_RUN_KEY, TaskStatus
from .contracts import AgentTask, AssignTaskParams, CreateTask, TaskStatusParams, Wait
from .models import StepRun, Task

# Agents a capability match looks at, fewest open tasks first.
MAX_CANDIDATES = 200


@dataclass(frozen=True)
class StepContext:
    """What an action knows of the step it runs for."""

    principal: Principal
    run_id: str
    step_run_id: str
    step_name: str
    namespace: Namespace | None  # the workflow's
    now: datetime
    timeout_seconds: int | None = None  # the step's own, if it has one


@dataclass(frozen=True)
class Done:
    """The step has completed with this output."""

    output: Any


@dataclass(frozen=True)
class Waiting:
    """The step waits: until `until` (then `finish` completes it), or for `task` to end; `deadline` times it out."""

    output: Any = None
    until: datetime | None = None
    deadline: datetime | None = None
    task: Task | None = None


class StepFailed(Exception):
    """An attempt of a step failed (it may be retried); the message is kept in the step run."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Action:
    name: str
    params: type[Contract]
    start: Callable[[StepContext, Any], Done | Waiting]
    description: str
    # For actions that wait: how the step ends once its time or its task has come; None while it still waits.
    finish: Callable[[StepRun, datetime], Done | None] | None = field(default=None)

    @property
    def waits(self) -> bool:
        return self.finish is not None


# --- Handlers ------------------------------------------------------------------------------------

def create_task(ctx: StepContext, params: CreateTask) -> Done:
    task = task_services.create_task(ctx.principal, params)
    return Done({"id": str(task.pk), "title": task.title, "status": task.status, "namespace": task.namespace.namespace})


def assign_task(ctx: StepContext, params: AssignTaskParams) -> Done:
    task = task_services.get_visible_task(ctx.principal, params.task_id)
    task = task_services.assign_task(ctx.principal, task, params)
    return Done({"id": str(task.pk), "assigned_agent_id": task.assigned_agent.agent_id if task.assigned_agent else None})


def update_task_status(ctx: StepContext, params: TaskStatusParams) -> Done:
    task = task_services.get_visible_task(ctx.principal, params.task_id)
    task = task_services.update_task_status(ctx.principal, task, params)
    return Done({"id": str(task.pk), "status": task.status, "progress": task.progress})


def store_memory(ctx: StepContext, params: StoreMemory) -> Done:
    memory = memory_services.create_memory(ctx.principal, params)
    return Done({"id": str(memory.pk), "namespace": memory.namespace.namespace, "access_level": memory.access_level})


def search_memories(ctx: StepContext, params: SearchMemories) -> Done:
    # Only ids and scores are kept: a run's output may be read by the workflow's managers,
    # who need not be able to read the memories the triggering agent found.
    result = memory_search.search(ctx.principal, memory_search.search_request(params))
    hits = [{"id": str(hit.memory.pk), "score": hit.score, "similarity": hit.similarity} for hit in result.hits]
    return Done({"count": len(hits), "results": hits})


def wait(ctx: StepContext, params: Wait) -> Done | Waiting:
    output = {"waited_seconds": params.seconds}
    if params.seconds <= 0:
        return Done(output)
    return Waiting(output=output, until=ctx.now + timedelta(seconds=params.seconds))


def finish_wait(step_run: StepRun, now: datetime) -> Done | None:
    if step_run.due_at is not None and step_run.due_at > now:
        return None
    return Done(step_run.output)


def matching_agent(namespace: Namespace | None, capability: dict) -> Agent | None:
    """An active member of `namespace` whose capabilities contain `capability`, the one with the fewest open tasks.

    Only members of the workflow's namespace are candidates, whatever the capabilities of others.
    """
    if namespace is None:
        return None
    candidates = (
        Agent.objects.filter(is_active=True, capabilities__contains=capability)
        .annotate(open_tasks=Count("assigned_tasks", filter=Q(assigned_tasks__status__in=OPEN_TASK_STATUSES)))
        .select_related("user", "namespace")
        .order_by("open_tasks", "agent_id")[:MAX_CANDIDATES]
    )
    return next((agent for agent in candidates if access.is_member(agent, namespace)), None)


def agent_task(ctx: StepContext, params: AgentTask) -> Waiting:
    """Open a task for an agent in the workflow's namespace, as the runner, and wait for its end."""
    agent_id = params.agent_id
    if not agent_id:
        agent = matching_agent(ctx.namespace, dict(params.capability))
        if agent is None:
            where = f"namespace '{ctx.namespace.namespace}'" if ctx.namespace else "the workflow's namespace"
            raise InvalidInput(f"No active agent of {where} has the capabilities asked for.", field="capability")
        agent_id = agent.agent_id
    task = task_services.create_task(ctx.principal, CreateTask.parse({
        "title": params.title,
        "description": params.description,
        "priority": params.priority,
        "task_type": params.task_type,
        "tags": list(params.tags),
        "namespace": ctx.namespace.namespace if ctx.namespace else None,
        "assigned_agent_id": agent_id,
        "metadata": {STEP_RUN_KEY: {"run_id": ctx.run_id, "step": ctx.step_name}},
    }))
    timeouts = [seconds for seconds in (params.timeout_seconds, ctx.timeout_seconds) if seconds]
    deadline = ctx.now + timedelta(seconds=min(timeouts)) if timeouts else None
    return Waiting(task=task, deadline=deadline)


def finish_agent_task(step_run: StepRun, now: datetime) -> Done | None:
    task = step_run.task
    if task is None:
        raise StepFailed("The task this step waited for was deleted.")
    if task.status in OPEN_TASK_STATUSES:
        return None
    if task.status == TaskStatus.COMPLETED:
        return Done({
            "task_id": str(task.pk), "status": task.status, "result": task.result,
            "assigned_agent_id": task.assigned_agent.agent_id if task.assigned_agent else None,
        })
    detail = f": {task.error}" if task.error else "."
    raise StepFailed(f"The task ended {task.status}{detail}")


ACTIONS: dict[str, Action] = {action.name: action for action in [
    Action("create_task", CreateTask, create_task, "Create a task (as POST /tasks)."),
    Action("assign_task", AssignTaskParams, assign_task, "Give a task to an agent (as POST /tasks/{id}/assign)."),
    Action("update_task_status", TaskStatusParams, update_task_status,
           "Move a task to a status (as POST /tasks/{id}/status)."),
    Action("store_memory", StoreMemory, store_memory, "Store a memory (as POST /memories)."),
    Action("search_memories", SearchMemories, search_memories,
           "Search memories (as POST /memories/search); the output keeps ids and scores."),
    Action("wait", Wait, wait, "Wait so many seconds (scheduled: no worker is held).", finish=finish_wait),
    Action("agent_task", AgentTask, agent_task,
           "Open a task for an agent (named, or found by its capabilities in the workflow's namespace) and wait "
           "until it is completed, failed or cancelled; its result is the step's output.", finish=finish_agent_task),
]}
