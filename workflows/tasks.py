"""Background jobs on workflows. Ids in; executing a run twice is a no-op."""
from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True, acks_late=True)
def execute_workflow_run(run_id: str) -> str | None:
    """Execute one workflow run; a run that is already running or finished is left alone."""
    from .engine import execute_run

    return execute_run(run_id)
