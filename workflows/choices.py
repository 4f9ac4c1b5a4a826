"""Enumerations of the workflows app, importable without loading models."""
from django.db import models


class TaskStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class TaskPriority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class WorkflowType(models.TextChoices):
    SEQUENTIAL = "sequential", "Sequential"
    PARALLEL = "parallel", "Parallel"
    CONDITIONAL = "conditional", "Conditional"
    HYBRID = "hybrid", "Hybrid"


class WorkflowStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class WorkflowDefinitionStatus(models.TextChoices):
    """The statuses a workflow's definition is given (runs carry their own status)."""

    DRAFT = WorkflowStatus.DRAFT.value, WorkflowStatus.DRAFT.label
    ACTIVE = WorkflowStatus.ACTIVE.value, WorkflowStatus.ACTIVE.label
    INACTIVE = WorkflowStatus.INACTIVE.value, WorkflowStatus.INACTIVE.label


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class StepStatus(models.TextChoices):
    """A step run's status: a run's, plus waiting (for a time or for the task it opened)."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


# A step in one of these has finished; the steps after it may go on.
FINISHED_STEP_STATUSES = frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.SKIPPED})
OPEN_TASK_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.IN_PROGRESS})
FINAL_TASK_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED})
# The task metadata key telling an agent which run and step opened a task (agent_task steps); only
# for reading: the step run's own `task` link is what the engine follows.
STEP_RUN_KEY = "workflow"
