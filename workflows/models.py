"""Tasks assigned to agents, and workflows (ordered or DAG steps) executed on Celery."""
from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.models import BaseModel, choices_check

from .choices import RunStatus, StepStatus, TaskPriority, TaskStatus, WorkflowStatus, WorkflowType
from .querysets import TaskQuerySet, WorkflowQuerySet, WorkflowRunQuerySet


class Task(BaseModel):
    """A unit of work, optionally assigned to an agent and ordered after other tasks."""

    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    task_type = models.CharField(max_length=64, default="general")
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    priority = models.CharField(max_length=16, choices=TaskPriority.choices, default=TaskPriority.MEDIUM)
    progress = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    assigned_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tasks"
    )
    created_by = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="created_tasks"
    )
    namespace = models.ForeignKey(
        "namespaces.Namespace", null=True, blank=True, on_delete=models.PROTECT, related_name="tasks"
    )
    dependencies = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="dependents")
    tags = models.JSONField(default=list, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    retry_count = models.PositiveSmallIntegerField(default=0)
    max_retries = models.PositiveSmallIntegerField(default=3)

    objects = TaskQuerySet.as_manager()

    class Meta:
        db_table = "tasks"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "priority"], name="tasks_status_priority_idx")]
        constraints = [
            choices_check("status", TaskStatus, "tasks_status_valid"),
            choices_check("priority", TaskPriority, "tasks_priority_valid"),
            models.CheckConstraint(condition=models.Q(progress__gte=0, progress__lte=1), name="tasks_progress_range"),
            models.CheckConstraint(condition=~models.Q(title=""), name="tasks_title_not_empty"),
        ]

    def __str__(self) -> str:
        return self.title


class Workflow(BaseModel):
    """A named list (or DAG, via `depends_on`) of steps that a run executes in order."""

    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    workflow_type = models.CharField(max_length=16, choices=WorkflowType.choices, default=WorkflowType.SEQUENTIAL)
    status = models.CharField(max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.DRAFT)
    steps = models.JSONField(default=list, blank=True)
    config = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    namespace = models.ForeignKey(
        "namespaces.Namespace", null=True, blank=True, on_delete=models.PROTECT, related_name="workflows"
    )
    created_by = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="created_workflows"
    )
    execution_count = models.PositiveIntegerField(default=0)
    last_executed_at = models.DateTimeField(null=True, blank=True)

    objects = WorkflowQuerySet.as_manager()

    class Meta:
        db_table = "workflows"
        ordering = ["-created_at"]
        constraints = [
            choices_check("workflow_type", WorkflowType, "workflows_type_valid"),
            choices_check("status", WorkflowStatus, "workflows_status_valid"),
            models.CheckConstraint(condition=~models.Q(name=""), name="workflows_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkflowRun(BaseModel):
    """One execution of a workflow."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    triggered_by = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="workflow_runs"
    )
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    current_step_index = models.IntegerField(default=0)
    failed_step_index = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the sweep advances this run if nothing else has by then (a lost message, a worker that died);
    # null while the run only waits for something that wakes it (a task's end) or has finished.
    wake_at = models.DateTimeField(null=True, blank=True)

    objects = WorkflowRunQuerySet.as_manager()

    class Meta:
        db_table = "workflow_runs"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["wake_at"], name="workflow_runs_wake_at_idx",
                                condition=models.Q(wake_at__isnull=False))]
        constraints = [choices_check("status", RunStatus, "workflow_runs_status_valid")]

    def __str__(self) -> str:
        return f"{self.workflow} run {self.created_at:%Y-%m-%d %H:%M}"


class StepRun(BaseModel):
    """The record of one step inside a workflow run: its state in the run's state machine.

    An attempt is claimed by locking this row (pending, attempt N) and commits together with the
    step's effects, so a step's effect is applied once however often its message is delivered.
    """

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="step_runs")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=255)
    action = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Attempts begun; the retries a step took are attempt - 1.
    attempt = models.PositiveSmallIntegerField(default=0)
    # Pending: not before this time (a retry's backoff). Waiting: a wait step ends then.
    due_at = models.DateTimeField(null=True, blank=True)
    # Waiting: the step times out then.
    deadline_at = models.DateTimeField(null=True, blank=True)
    # When the step's execution was last sent to a worker (the engine sends it again when that grows old).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # The task an agent_task step opened (its latest attempt's).
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="step_runs")

    class Meta:
        db_table = "step_runs"
        ordering = ["run", "index"]
        constraints = [
            choices_check("status", StepStatus, "step_runs_status_valid"),
            models.UniqueConstraint(fields=["run", "index"], name="step_runs_unique_index"),
        ]

    @property
    def retries(self) -> int:
        return max(self.attempt - 1, 0)

    def __str__(self) -> str:
        return f"{self.index}: {self.name}"
