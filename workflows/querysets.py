"""Read-side queries on tasks, workflows and runs; visibility always comes from access."""
from __future__ import annotations

from django.db import models

from .choices import RunStatus


class TaskQuerySet(models.QuerySet):
    def visible_to(self, actor) -> TaskQuerySet:
        """Only the tasks `actor` (agent, operator user or Principal) may read."""
        from access import task_visibility_q

        return self.filter(task_visibility_q(actor))


class WorkflowQuerySet(models.QuerySet):
    def visible_to(self, actor) -> WorkflowQuerySet:
        """Only the workflows `actor` may read."""
        from access import workflow_visibility_q

        return self.filter(workflow_visibility_q(actor))


class WorkflowRunQuerySet(models.QuerySet):
    def visible_to(self, actor) -> WorkflowRunQuerySet:
        """Only the runs `actor` may read (its own, or all runs of workflows it manages)."""
        from access import workflow_run_visibility_q

        return self.filter(workflow_run_visibility_q(actor))

    def unfinished(self) -> WorkflowRunQuerySet:
        return self.filter(status__in=[RunStatus.PENDING, RunStatus.RUNNING])
