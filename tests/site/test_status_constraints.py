"""Every enumerated status column is guarded by the database, not only by the model's choices."""
from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from workflows.models import StepRun, Task, Workflow, WorkflowRun


@pytest.mark.parametrize(
    ("model", "values", "constraint"),
    [
        (Task, {"title": "t", "status": "doing"}, "tasks_status_valid"),
        (Task, {"title": "t", "priority": "urgent"}, "tasks_priority_valid"),
        (Task, {"title": "t", "progress": 1.5}, "tasks_progress_range"),
        (Task, {"title": ""}, "tasks_title_not_empty"),
        (Workflow, {"name": "w", "status": "sleeping"}, "workflows_status_valid"),
        (Workflow, {"name": "w", "workflow_type": "random"}, "workflows_type_valid"),
    ],
)
def test_database_rejects_unknown_statuses(db, model, values, constraint):
    # when / then
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        model.objects.create(**values)
    assert model.objects.count() == 0


def test_database_rejects_unknown_run_and_step_statuses(db):
    # given
    run = WorkflowRun.objects.create(workflow=Workflow.objects.create(name="w"))
    # when / then
    with pytest.raises(IntegrityError, match="workflow_runs_status_valid"), transaction.atomic():
        WorkflowRun.objects.filter(pk=run.pk).update(status="exploded")
    with pytest.raises(IntegrityError, match="step_runs_status_valid"), transaction.atomic():
        StepRun.objects.create(run=run, index=0, name="s", action="noop", status="exploded")
    assert WorkflowRun.objects.get(pk=run.pk).status == "pending"
    assert StepRun.objects.count() == 0
