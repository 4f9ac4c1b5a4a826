"""Background jobs of the workflow engine (workflows.engine). Ids in; a repeated message is a no-op.

Each is acknowledged late: a message whose worker dies is delivered again (and, until then, the sweep
sends what the run needs). workflows.dispatch sends them by these names, also without a broker.
"""
from __future__ import annotations

from celery import shared_task

from . import dispatch, engine


@shared_task(name=dispatch.ADVANCE_RUN, ignore_result=True, acks_late=True)
def advance_run(run_id: str) -> str | None:
    """Move a run on: claim it, skip, send ready steps, finish it."""
    return engine.advance_run(run_id)


@shared_task(name=dispatch.EXECUTE_STEP, ignore_result=True, acks_late=True)
def execute_step(step_run_id: str) -> str | None:
    """Run one attempt of one step (a step already claimed or finished is left alone)."""
    return engine.execute_step(step_run_id)


@shared_task(name=dispatch.RESUME_STEP, ignore_result=True, acks_late=True)
def resume_step(step_run_id: str) -> str | None:
    """End a waiting step whose time, task or deadline has come."""
    return engine.resume_step(step_run_id)


@shared_task(name=dispatch.SWEEP_RUNS, ignore_result=True)
def sweep_workflow_runs() -> int:
    """Advance runs nothing has moved by their wake time (lost messages, vanished workers)."""
    return engine.sweep()


@shared_task(name="workflows.tasks.execute_workflow_run", ignore_result=True, acks_late=True)
def execute_workflow_run(run_id: str) -> str | None:
    """The earlier name of advance_run, for messages queued before an upgrade."""
    return engine.advance_run(run_id)
