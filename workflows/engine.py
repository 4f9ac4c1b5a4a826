"""Execution of workflow runs: one worker runs a run's steps, as the principal that started the run.

Each step's work and the record of its success commit together, in one transaction under
the triggering agent's row-level-security context, so a step's effects never outlive a
missing record. The run is claimed with a conditional update (pending -> running), so a run
that is already running or finished is never executed twice; cancellation is honoured
before each step.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from access import Principal
from core.db import agent_context
from core.errors import ServiceError
from memories import search as memory_search
from memories import services as memory_services
from memories.contracts import SearchMemories, StoreMemory

from . import services
from .contracts import STEP_PARAMS, AssignTaskParams, CreateTask, TaskStatusParams, Wait
from .models import RunStatus, StepRun, Workflow, WorkflowRun, WorkflowType
from .steps import condition_holds, execution_order, referenced_steps, resolve

logger = logging.getLogger(__name__)
MAX_ERROR_LENGTH = 2000


# --- Actions: each takes the running principal and its params, resolved and parsed by the action's
# contract (workflows.contracts.STEP_PARAMS), and returns JSON output ---

def create_task_action(principal: Principal, params: CreateTask) -> dict:
    task = services.create_task(principal, params)
    return {"id": str(task.pk), "title": task.title, "status": task.status, "namespace": task.namespace.namespace}


def assign_task_action(principal: Principal, params: AssignTaskParams) -> dict:
    task = services.get_visible_task(principal, params.task_id)
    task = services.assign_task(principal, task, params)
    return {"id": str(task.pk), "assigned_agent_id": task.assigned_agent.agent_id if task.assigned_agent else None}


def update_task_status_action(principal: Principal, params: TaskStatusParams) -> dict:
    task = services.get_visible_task(principal, params.task_id)
    task = services.update_task_status(principal, task, params)
    return {"id": str(task.pk), "status": task.status, "progress": task.progress}


def store_memory_action(principal: Principal, params: StoreMemory) -> dict:
    memory = memory_services.create_memory(principal, params)
    return {"id": str(memory.pk), "namespace": memory.namespace.namespace, "access_level": memory.access_level}


def search_memories_action(principal: Principal, params: SearchMemories) -> dict:
    # Only ids and scores are kept: a run's output may be read by the workflow's managers,
    # who need not be able to read the memories the triggering agent found.
    result = memory_search.search(principal, memory_search.search_request(params))
    hits = [
        {"id": str(hit.memory.pk), "score": hit.score, "similarity": hit.similarity} for hit in result.hits
    ]
    return {"count": len(hits), "results": hits}


def wait_action(principal: Principal, params: Wait) -> dict:
    time.sleep(params.seconds)
    return {"waited_seconds": params.seconds}


# action name -> (handler, whether it touches the database and so runs in a transaction)
ACTION_HANDLERS = {
    "create_task": (create_task_action, True),
    "assign_task": (assign_task_action, True),
    "update_task_status": (update_task_status_action, True),
    "store_memory": (store_memory_action, True),
    "search_memories": (search_memories_action, True),
    "wait": (wait_action, False),
}


# --- Running a run ----------------------------------------------------------------------------

class RunRefused(Exception):
    """The run cannot execute at all (for example, the agent that started it was retired)."""


def _principal_for(run: WorkflowRun) -> Principal:
    if run.triggered_by_id is not None:
        agent = run.triggered_by
        if not agent.is_active:
            raise RunRefused(f"Agent '{agent.agent_id}' is no longer active.")
        return Principal.of(agent)
    user_id = run.metadata.get("triggered_by_user_id")
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first() if user_id is not None else None
    if user is None:
        raise RunRefused("Whoever started this run no longer exists or is inactive.")
    return Principal.of(user)


@contextmanager
def _acting_as(principal: Principal):
    """A transaction for one step, under row-level security when the principal is an agent."""
    if principal.agent is not None:
        with agent_context(principal.agent):
            yield
    else:
        with transaction.atomic():
            yield


def _now():
    return timezone.now()


def _run_status(run: WorkflowRun) -> str | None:
    return WorkflowRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()


def _close_remaining(run: WorkflowRun, status: str, reason: str) -> None:
    StepRun.objects.filter(run=run, status=RunStatus.PENDING).update(
        status=status, metadata={"reason": reason}, updated_at=_now()
    )


def _finish_run(run: WorkflowRun, status: str, outputs: dict, *, error: str = "", failed_step_index=None) -> None:
    """Record the end of a run, unless it was cancelled meanwhile (a cancel always wins)."""
    now = _now()
    WorkflowRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=status,
        output=outputs,
        error=error[:MAX_ERROR_LENGTH],
        failed_step_index=failed_step_index,
        finished_at=now,
        updated_at=now,
    )


def _skip_reason(step: dict, statuses: dict, run_input: dict, outputs: dict) -> str | None:
    upstream = set(step.get("depends_on", [])) | referenced_steps(step)
    for name in sorted(upstream):
        if statuses.get(name) in (RunStatus.SKIPPED, RunStatus.CANCELLED):
            return f"Step '{name}', which this step needs, was skipped."
    when = step.get("when")
    if when and not condition_holds(when, run_input, statuses, outputs):
        return "The step's condition did not hold."
    return None


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        return f"{exc.message} (field: {exc.field})" if exc.field else exc.message
    return f"{type(exc).__name__}: {exc}"


def execute_run(run_id) -> str | None:
    """Execute a pending run to its end; return its final status, or None if it was not pending."""
    now = _now()
    claimed = WorkflowRun.objects.filter(pk=run_id, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=now, updated_at=now
    )
    if not claimed:
        return None
    run = WorkflowRun.objects.select_related("triggered_by__user", "triggered_by__namespace").get(pk=run_id)
    Workflow.objects.filter(pk=run.workflow_id).update(
        execution_count=F("execution_count") + 1, last_executed_at=now
    )
    try:
        _execute_steps(run)
    except Exception as exc:  # a fault of the engine itself: never leave the run "running"
        logger.exception("workflow run %s stopped by an internal error", run.pk)
        _close_remaining(run, RunStatus.SKIPPED, "The run stopped on an internal error.")
        _finish_run(run, RunStatus.FAILED, {}, error=f"Internal error: {type(exc).__name__}")
    return _run_status(run)


def _execute_steps(run: WorkflowRun) -> None:
    steps = run.metadata.get("steps") or []
    StepRun.objects.bulk_create(
        [StepRun(run=run, index=index, name=step["name"], action=step["action"]) for index, step in enumerate(steps)]
    )
    step_runs = {step_run.index: step_run for step_run in run.step_runs.all()}
    try:
        principal = _principal_for(run)
    except RunRefused as exc:
        _close_remaining(run, RunStatus.SKIPPED, str(exc))
        _finish_run(run, RunStatus.FAILED, {}, error=str(exc))
        return
    statuses: dict[str, str] = {}
    outputs: dict[str, object] = {}
    for index in execution_order(steps, run.metadata.get("workflow_type", WorkflowType.SEQUENTIAL)):
        step, step_run = steps[index], step_runs[index]
        if _run_status(run) != RunStatus.RUNNING:
            _close_remaining(run, RunStatus.CANCELLED, "The run was cancelled.")
            return
        WorkflowRun.objects.filter(pk=run.pk).update(current_step_index=index, updated_at=_now())
        reason = _skip_reason(step, statuses, run.input, outputs)
        if reason:
            StepRun.objects.filter(pk=step_run.pk).update(
                status=RunStatus.SKIPPED, metadata={"reason": reason}, updated_at=_now()
            )
            statuses[step["name"]] = RunStatus.SKIPPED
            continue
        started = _now()
        if not StepRun.objects.filter(pk=step_run.pk, status=RunStatus.PENDING).update(
            status=RunStatus.RUNNING, started_at=started, updated_at=started
        ):
            _close_remaining(run, RunStatus.CANCELLED, "The run was cancelled.")
            return
        step_run.started_at = started
        try:
            output = _run_step(principal, step, step_run, {"input": run.input, "steps": outputs})
        except Exception as exc:
            if not isinstance(exc, ServiceError):
                logger.exception("step %s of workflow run %s failed", step["name"], run.pk)
            message = _error_text(exc)[:MAX_ERROR_LENGTH]
            StepRun.objects.filter(pk=step_run.pk).update(
                status=RunStatus.FAILED, error=message, finished_at=_now(), updated_at=_now()
            )
            _close_remaining(run, RunStatus.SKIPPED, f"Step '{step['name']}' failed before this step ran.")
            _finish_run(
                run, RunStatus.FAILED, outputs, error=f"Step '{step['name']}' failed: {message}", failed_step_index=index
            )
            return
        statuses[step["name"]] = RunStatus.COMPLETED
        outputs[step["name"]] = output
    _finish_run(run, RunStatus.COMPLETED, outputs)


def _run_step(principal: Principal, step: dict, step_run: StepRun, context: dict):
    """Resolve the step's params, parse them by the action's contract, do the action and record its success,
    all or nothing."""
    params = STEP_PARAMS[step["action"]].parse(resolve(step.get("params", {}), context))
    handler, transactional = ACTION_HANDLERS[step["action"]]

    def act():
        output = handler(principal, params)
        step_run.status = RunStatus.COMPLETED
        step_run.output = output
        step_run.finished_at = _now()
        step_run.save(update_fields=["status", "output", "finished_at", "updated_at"])
        return output

    if not transactional:
        return act()
    with _acting_as(principal):
        return act()
