"""The workflow engine: a run is a state machine kept in its step runs, moved on by small units of work.

- `advance_run` (under a lock on the run row) claims a pending run, skips the steps whose
  condition fails, sends every step whose dependencies are met to be executed, fails the run when
  a step failed for good, and completes it when every step has finished.
- `execute_step` runs one attempt of one step. The attempt is claimed by locking its step run
  (pending, with SKIP LOCKED), and the step's effects commit in the same transaction as its new
  status: a second delivery of the message finds the step no longer pending and does nothing, and a
  worker that dies mid-step leaves it pending, its effects rolled back, for the sweep to send again.
  An action that waits (workflows.actions) leaves the step `waiting`, holding no worker.
- `resume_step` ends a waiting step once its time has come, its task has ended (the task service
  wakes it), or its deadline has passed (a timeout). A failed attempt is tried again after an
  exponential backoff while the step's `retries` last; then `on_failure` decides for the run.
- `sweep` advances runs whose wake time has passed: a message lost, a worker that vanished.

Every action runs as the principal that started the run (under the agent's row-level-security
context), through the same services as the API: a run can do no more than its runner could by hand.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from access import SYSTEM, Principal
from core.db import enter_agent_context, leave_agent_context
from core.errors import ServiceError

from . import dispatch, task_services
from .actions import ACTIONS, Done, StepContext, StepFailed, Waiting
from .choices import FINISHED_STEP_STATUSES, OPEN_TASK_STATUSES, StepStatus, TaskStatus
from .contracts import MAX_BACKOFF_SECONDS, UpdateTaskStatus
from .models import RunStatus, StepRun, Workflow, WorkflowRun, WorkflowType
from .steps import condition_holds, referenced_steps, resolve, waits_for

logger = logging.getLogger(__name__)
MAX_ERROR_LENGTH = 2000
MAX_SWEEP = 500
# A message may come a little before its time (clocks of two machines): up to this early counts as due.
EARLY_SECONDS = 0.5


class RunRefused(Exception):
    """The run cannot execute at all (for example, the agent that started it was retired)."""


def _now():
    return timezone.now()


def lease() -> timedelta:
    """How long a sent step may go unanswered before the engine sends it again."""
    return timedelta(seconds=settings.TMWS_WORKFLOW_LEASE_SECONDS)


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
def _acting_as(principal: Principal, timeout_seconds: int | None):
    """A savepoint for one attempt's work, under row-level security when the principal is an agent."""
    if principal.agent is not None:
        enter_agent_context(principal.agent)
    try:
        with transaction.atomic():
            if timeout_seconds:
                _statement_timeout(f"{int(timeout_seconds * 1000)}ms")
            yield
            if timeout_seconds:
                _statement_timeout("0")
    finally:
        if principal.agent is not None:
            leave_agent_context()


def _statement_timeout(value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [value])


def _error_text(exc: Exception) -> str:
    if isinstance(exc, StepFailed):
        return exc.message
    if isinstance(exc, ServiceError):
        return f"{exc.message} (field: {exc.field})" if exc.field else exc.message
    return f"{type(exc).__name__}: {exc}"


def _definition(run: WorkflowRun, step_run: StepRun) -> dict:
    return (run.metadata.get("steps") or [])[step_run.index]


# --- Advancing a run ---------------------------------------------------------------------------

def _skip_reason(step: dict, statuses: dict, run_input: dict, outputs: dict) -> str | None:
    for name in sorted(set(step.get("depends_on", [])) | referenced_steps(step)):
        if statuses.get(name) in (StepStatus.SKIPPED, StepStatus.CANCELLED):
            return f"Step '{name}', which this step needs, was skipped."
    for name in sorted(referenced_steps(step)):
        if statuses.get(name) == StepStatus.FAILED:
            return f"Step '{name}', whose output this step uses, failed."
    when = step.get("when")
    if when and not condition_holds(when, run_input, statuses, outputs):
        return "The step's condition did not hold."
    return None


def advance_run(run_id) -> str | None:
    """Move a run on as far as it can go now; returns its status (None if there is no such run)."""
    with transaction.atomic():
        run = (
            WorkflowRun.objects.select_for_update(of=("self",))
            .select_related("triggered_by__user", "triggered_by__namespace")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            return run.status if run is not None else None
        now = _now()
        if run.status == RunStatus.PENDING and not _claim(run, now):
            return run.status
        _advance(run, now)
        return run.status


def _claim(run: WorkflowRun, now) -> bool:
    """pending -> running: record a step run per step; a run whose runner is gone fails without running any."""
    run.status, run.started_at = RunStatus.RUNNING, now
    steps = run.metadata.get("steps") or []
    StepRun.objects.bulk_create(
        [StepRun(run=run, index=index, name=step["name"], action=step["action"]) for index, step in enumerate(steps)]
    )
    Workflow.objects.filter(pk=run.workflow_id).update(execution_count=F("execution_count") + 1, last_executed_at=now)
    try:
        _principal_for(run)
    except RunRefused as exc:
        _end_run(run, RunStatus.FAILED, now, error=str(exc), reason=str(exc))
        return False
    run.save(update_fields=["status", "started_at", "updated_at"])
    return True


def _advance(run: WorkflowRun, now) -> None:
    steps = run.metadata.get("steps") or []
    before = waits_for(steps, run.metadata.get("workflow_type", WorkflowType.SEQUENTIAL))
    step_runs = {step_run.name: step_run for step_run in run.step_runs.select_related("task")}
    statuses = {name: step_run.status for name, step_run in step_runs.items()}
    outputs = {name: sr.output for name, sr in step_runs.items() if sr.status == StepStatus.COMPLETED}
    ready: list[StepRun] = []
    changed = True
    while changed:  # a skip can make the steps after it ready (to run, or to be skipped in turn)
        changed = False
        for step in steps:
            step_run = step_runs[step["name"]]
            if step_run.status != StepStatus.PENDING or step_run in ready:
                continue
            if any(statuses[name] not in FINISHED_STEP_STATUSES for name in before[step["name"]]):
                continue
            reason = _skip_reason(step, statuses, run.input, outputs)
            if reason is None:
                ready.append(step_run)
                continue
            StepRun.objects.filter(pk=step_run.pk, status=StepStatus.PENDING).update(
                status=StepStatus.SKIPPED, metadata={**step_run.metadata, "reason": reason}, updated_at=now)
            step_run.status = statuses[step["name"]] = StepStatus.SKIPPED
            changed = True
    failed = [step_runs[step["name"]] for step in steps if step_runs[step["name"]].status == StepStatus.FAILED
              and step.get("on_failure", "fail_run") == "fail_run"]
    if failed:
        first = failed[0]
        _end_run(run, RunStatus.FAILED, now, outputs=outputs, error=f"Step '{first.name}' failed: {first.error}",
                 failed_step_index=first.index, reason=f"Step '{first.name}' failed before this step ran.")
        return
    if all(status in FINISHED_STEP_STATUSES for status in statuses.values()):
        _end_run(run, RunStatus.COMPLETED, now, outputs=outputs)
        return
    for step_run in ready:
        if step_run.dispatched_at is None or _stale(step_run, now):
            _send_step(step_run, now)
    for step_run in step_runs.values():
        if step_run.status == StepStatus.WAITING and _waiting_is_over(step_run, now):
            dispatch.send_on_commit(dispatch.RESUME_STEP, str(step_run.pk))
    run.wake_at = _wake_at(step_runs.values(), now)
    run.save(update_fields=["wake_at", "updated_at"])


def _stale(step_run: StepRun, now) -> bool:
    sent = max(filter(None, [step_run.dispatched_at, step_run.due_at]))
    return sent < now - lease()


def _send_step(step_run: StepRun, now) -> None:
    """Send a ready step to be executed (after its backoff, if it has one)."""
    StepRun.objects.filter(pk=step_run.pk, status=StepStatus.PENDING).update(dispatched_at=now, updated_at=now)
    step_run.dispatched_at = now
    countdown = (step_run.due_at - now).total_seconds() if step_run.due_at else 0
    dispatch.send_on_commit(dispatch.EXECUTE_STEP, str(step_run.pk), countdown=max(countdown, 0))


def _waiting_is_over(step_run: StepRun, now) -> bool:
    """A waiting step whose time or deadline has passed, or whose task has ended (a resume that did not come)."""
    times = [moment for moment in (step_run.due_at, step_run.deadline_at) if moment is not None]
    if times and min(times) <= now:
        return True
    return step_run.task_id is not None and step_run.task is not None and step_run.task.status not in OPEN_TASK_STATUSES


def _wake_at(step_runs, now):
    """When the sweep should look at the run again if nothing moves it before."""
    moments = []
    for step_run in step_runs:
        if step_run.status == StepStatus.PENDING and step_run.dispatched_at is not None:
            moments.append(max(filter(None, [step_run.dispatched_at, step_run.due_at])) + lease())
        elif step_run.status == StepStatus.WAITING:
            times = [moment for moment in (step_run.due_at, step_run.deadline_at) if moment is not None]
            if times:
                moments.append(max(min(times), now) + lease())
    return min(moments) if moments else None


def close_open_steps(run: WorkflowRun, now, *, pending_status: str, reason: str) -> None:
    """Close what a run still has open: pending steps get `pending_status`, waiting ones are cancelled along with
    the tasks they opened (the run opened them; closing them is the run's own bookkeeping)."""
    StepRun.objects.filter(run=run, status=StepStatus.PENDING).update(
        status=pending_status, metadata={"reason": reason}, updated_at=now)
    waiting = list(StepRun.objects.filter(run=run, status=StepStatus.WAITING).select_related("task"))
    StepRun.objects.filter(pk__in=[step_run.pk for step_run in waiting]).update(
        status=StepStatus.CANCELLED, metadata={"reason": reason}, finished_at=now, updated_at=now)
    for step_run in waiting:
        _close_task(step_run, reason)


def _close_task(step_run: StepRun, reason: str) -> None:
    task = step_run.task
    if task is not None and task.status in OPEN_TASK_STATUSES:
        task_services.update_task_status(SYSTEM, task, UpdateTaskStatus(status=TaskStatus.CANCELLED.value,
                                                                         error=reason))


def _end_run(run: WorkflowRun, status: str, now, *, outputs=None, error: str = "", failed_step_index=None,
             reason: str = "") -> None:
    if status != RunStatus.COMPLETED:
        close_open_steps(run, now, pending_status=StepStatus.SKIPPED, reason=reason or error)
    run.status = status
    run.output = outputs or {}
    run.error = error[:MAX_ERROR_LENGTH]
    run.failed_step_index = failed_step_index
    run.finished_at = now
    run.wake_at = None
    run.save(update_fields=["status", "output", "error", "failed_step_index", "started_at", "finished_at", "wake_at",
                            "updated_at"])


# --- Executing and resuming steps ------------------------------------------------------------

def _locked_step(step_run_id, status: str) -> StepRun | None:
    """The step run, locked for this transaction, if it is in `status` in a running run; None if another worker holds
    it (SKIP LOCKED) or it has moved on: the claim that makes a repeated message a no-op."""
    step_run = (
        StepRun.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("run__workflow__namespace", "run__triggered_by__user", "run__triggered_by__namespace",
                        "task__assigned_agent")
        .filter(pk=step_run_id, status=status)
        .first()
    )
    if step_run is None or step_run.run.status != RunStatus.RUNNING:
        return None
    return step_run


def execute_step(step_run_id) -> str | None:
    """Run one attempt of a pending step; returns the step's new status (None if there was nothing to do)."""
    with transaction.atomic():
        step_run = _locked_step(step_run_id, StepStatus.PENDING)
        if step_run is None:
            return None
        run, now = step_run.run, _now()
        if step_run.due_at is not None and step_run.due_at > now + timedelta(seconds=EARLY_SECONDS):
            return None  # early: the message sent for its time, or the sweep, comes back to it
        step = _definition(run, step_run)
        action = ACTIONS[step_run.action]
        step_run.attempt += 1
        step_run.started_at = step_run.started_at or now
        step_run.due_at = step_run.deadline_at = None
        WorkflowRun.objects.filter(pk=run.pk).update(current_step_index=step_run.index, updated_at=now)
        try:
            principal = _principal_for(run)
        except RunRefused as exc:
            _attempt_failed(step_run, step, str(exc), now, retry=False)
            return _save_step(step_run, now)
        try:
            with _acting_as(principal, None if action.waits else step.get("timeout_seconds")):
                outputs = dict(run.step_runs.filter(status=StepStatus.COMPLETED).values_list("name", "output"))
                params = action.params.parse(resolve(step.get("params", {}), {"input": run.input, "steps": outputs}))
                context = StepContext(principal=principal, run_id=str(run.pk), step_run_id=str(step_run.pk),
                                      step_name=step_run.name, namespace=run.workflow.namespace, now=now,
                                      timeout_seconds=step.get("timeout_seconds"))
                outcome = action.start(context, params)
        except Exception as exc:
            if not isinstance(exc, (ServiceError, StepFailed)):
                logger.warning("step %s of workflow run %s failed: %s", step_run.name, run.pk, _error_text(exc))
            _attempt_failed(step_run, step, _error_text(exc), _now())
            return _save_step(step_run, now)
        if isinstance(outcome, Waiting):
            _wait(step_run, step, outcome, now)
        else:
            _complete(step_run, outcome, _now())
        return _save_step(step_run, now)


def resume_step(step_run_id) -> str | None:
    """End a waiting step whose time, task or deadline has come; returns its new status (None: nothing to do)."""
    with transaction.atomic():
        step_run = _locked_step(step_run_id, StepStatus.WAITING)
        if step_run is None:
            return None
        run, now = step_run.run, _now()
        step = _definition(run, step_run)
        try:
            outcome = ACTIONS[step_run.action].finish(step_run, now + timedelta(seconds=EARLY_SECONDS))
        except StepFailed as exc:
            _attempt_failed(step_run, step, exc.message, now)
            return _save_step(step_run, now)
        if outcome is not None:
            _complete(step_run, outcome, now)
        elif step_run.deadline_at is not None and step_run.deadline_at <= now + timedelta(seconds=EARLY_SECONDS):
            seconds = round((step_run.deadline_at - (step_run.started_at or now)).total_seconds())
            timed_out = step_run.task
            _attempt_failed(step_run, step, f"The step timed out (waited about {seconds} seconds).", now)
            _save_step(step_run, now)
            if timed_out is not None:
                step_run.task = timed_out
                _close_task(step_run, "The workflow step that opened this task timed out.")
            return step_run.status
        else:
            return None  # not yet: the message sent for its time or deadline comes back to it
        return _save_step(step_run, now)


def _complete(step_run: StepRun, outcome: Done, now) -> None:
    step_run.status = StepStatus.COMPLETED
    step_run.output = outcome.output
    step_run.error = ""
    step_run.finished_at = now
    step_run.due_at = step_run.deadline_at = None


def _wait(step_run: StepRun, step: dict, outcome: Waiting, now) -> None:
    step_run.status = StepStatus.WAITING
    step_run.output = outcome.output
    step_run.task = outcome.task
    step_run.due_at = outcome.until
    deadlines = [moment for moment in (
        outcome.deadline,
        now + timedelta(seconds=step["timeout_seconds"]) if step.get("timeout_seconds") else None,
    ) if moment is not None]
    step_run.deadline_at = min(deadlines) if deadlines else None
    moments = [moment for moment in (step_run.due_at, step_run.deadline_at) if moment is not None]
    if moments:
        dispatch.send_on_commit(dispatch.RESUME_STEP, str(step_run.pk), countdown=(min(moments) - now).total_seconds())


def _attempt_failed(step_run: StepRun, step: dict, message: str, now, *, retry: bool = True) -> None:
    """Record a failed attempt: pending again after a backoff while retries last, failed for good after."""
    message = message[:MAX_ERROR_LENGTH]
    attempts = [*step_run.metadata.get("attempts", []),
                {"attempt": step_run.attempt, "error": message, "at": now.isoformat()}]
    step_run.metadata = {**step_run.metadata, "attempts": attempts[-20:]}
    step_run.error = message
    step_run.deadline_at = None
    if retry and step_run.attempt <= step.get("retries", 0):
        delay = min(float(step.get("retry_backoff_seconds", 1)) * 2 ** (step_run.attempt - 1), MAX_BACKOFF_SECONDS)
        step_run.status = StepStatus.PENDING
        step_run.due_at = now + timedelta(seconds=delay)
        step_run.dispatched_at = now
        dispatch.send_on_commit(dispatch.EXECUTE_STEP, str(step_run.pk), countdown=delay)
        return
    step_run.status = StepStatus.FAILED
    step_run.finished_at = now
    step_run.due_at = None


def _save_step(step_run: StepRun, now) -> str:
    """Save the step run and have the run advanced (at once, and by the sweep if that message is lost)."""
    step_run.save(update_fields=["status", "output", "error", "started_at", "finished_at", "attempt", "due_at",
                                 "deadline_at", "dispatched_at", "task", "metadata", "updated_at"])
    WorkflowRun.objects.filter(pk=step_run.run_id, status=RunStatus.RUNNING).update(
        wake_at=_now() + lease(), updated_at=now)
    if step_run.status != StepStatus.WAITING:
        dispatch.send_on_commit(dispatch.ADVANCE_RUN, str(step_run.run_id))
    return step_run.status


# --- Recovery ----------------------------------------------------------------------------------

def sweep(now=None) -> int:
    """Advance the unfinished runs whose wake time has passed; returns how many were sent."""
    now = now or _now()
    with transaction.atomic():
        due = list(
            WorkflowRun.objects.select_for_update(skip_locked=True)
            .filter(status__in=[RunStatus.PENDING, RunStatus.RUNNING], wake_at__lte=now)
            .order_by("wake_at")
            .values_list("pk", flat=True)[:MAX_SWEEP]
        )
        # Not again before the lease is over: the advance sent now sets the next wake time itself.
        WorkflowRun.objects.filter(pk__in=due).update(wake_at=now + lease())
        for run_id in due:
            dispatch.send_on_commit(dispatch.ADVANCE_RUN, str(run_id))
    return len(due)
