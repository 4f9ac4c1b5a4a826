"""Workflow runs: started, read and cancelled here, executed by the engine on Celery (workflows.tasks).

Imports run one way: runs -> tasks (Celery) -> engine -> actions -> task services; the engine,
which creates and updates tasks for its steps, never depends on the module that starts it.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

import access
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.models import find_visible

from . import dispatch, engine, tasks
from .choices import StepStatus
from .contracts import StartRun
from .models import RunStatus, Workflow, WorkflowRun, WorkflowStatus
from .steps import clean_steps


def get_visible_run(actor, workflow: Workflow | None, run_id) -> WorkflowRun:
    """A run (of `workflow`, when given) the actor may read, or NotFound."""
    visible = WorkflowRun.objects.visible_to(actor).select_related("workflow", "triggered_by")
    if workflow is not None:
        visible = visible.filter(workflow=workflow)
    return find_visible(visible, run_id, "Workflow run")


def visible_runs(actor, workflow: Workflow):
    """The runs of `workflow` the actor may read, newest first."""
    return WorkflowRun.objects.visible_to(actor).filter(workflow=workflow).select_related("triggered_by")


@transaction.atomic
def start_workflow_run(actor, workflow: Workflow, data: StartRun | None = None) -> WorkflowRun:
    """Create a pending run of a visible workflow and send it to the engine once this transaction commits.

    The run executes as the caller, with the caller's permissions, on the steps as they are now;
    `data` holds its input (none: an empty object). Nothing executes inside the caller's request.
    """
    principal = access.Principal.of(actor)
    if not Workflow.objects.visible_to(principal).filter(pk=workflow.pk).exists():
        raise NotFound("Workflow not found.")
    if not access.can_run_workflows(principal):
        raise Forbidden("Only agents and operators run workflows.")
    if workflow.status == WorkflowStatus.INACTIVE:
        raise Conflict("The workflow is inactive; set its status to active or draft to run it.",
                       field="status", code="inactive")
    run_input = dict(data.input) if data is not None else {}
    try:
        steps = clean_steps(workflow.steps, workflow.workflow_type)
    except InvalidInput as exc:
        raise InvalidInput(f"The workflow's steps are invalid: {exc.message}", field=exc.field or "steps") from exc
    metadata = {"steps": steps, "workflow_type": workflow.workflow_type}
    if principal.agent is None:
        metadata["triggered_by_user_id"] = principal.user_id
    run = WorkflowRun.objects.create(
        workflow=workflow, triggered_by=principal.agent, input=run_input, metadata=metadata,
        wake_at=timezone.now() + engine.lease(),
    )
    dispatch.send_on_commit(tasks.advance_run.name, str(run.pk))
    return run


@transaction.atomic
def cancel_workflow_run(actor, run: WorkflowRun) -> WorkflowRun:
    """Stop a pending or running run: its pending and waiting steps are cancelled, and so are the tasks its
    agent_task steps opened that are still open; a step in flight finishes, and no further step starts."""
    if not WorkflowRun.objects.visible_to(actor).filter(pk=run.pk).exists():
        raise NotFound("Workflow run not found.")
    if not access.can_cancel_workflow_run(actor, run):
        raise Forbidden("Only whoever started the run and the workflow's managers may cancel it.")
    run = WorkflowRun.objects.select_for_update(of=("self",)).select_related("workflow", "triggered_by").get(pk=run.pk)
    if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
        raise Conflict(f"The run is already {run.status}.", field="status", code="run_finished")
    now = timezone.now()
    run.status = RunStatus.CANCELLED
    run.finished_at = now
    run.error = "Cancelled."
    run.wake_at = None
    run.save(update_fields=["status", "finished_at", "error", "wake_at", "updated_at"])
    engine.close_open_steps(run, now, pending_status=StepStatus.CANCELLED, reason="The run was cancelled.")
    return run
