"""The input of every task, workflow and run operation, declared once (core.contracts).

REST views parse request bodies with these, MCP tools take them as their argument schema, the
OpenAPI document shows them, and the admin builds them from its forms; the services and
workflows.runs receive the parsed instances.

The params of each workflow step are contracts here too (the same contract the action's service
takes where there is one: `CreateTask` for create_task, `StoreMemory` for store_memory, ...). The
steps themselves, and the workflow contracts that hold them, are declared in workflows.definitions,
from the action registry (workflows.actions), which sits above the task services.
"""
from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from pydantic import (
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

from core import fields, validation
from core.contracts import FIELD, Contract, FieldError
from memories.contracts import (
    MAX_AGENT_ID_LENGTH,
    MAX_METADATA_DEPTH,
    MAX_NAMESPACE_LENGTH,
)

from .choices import TaskPriority, TaskStatus, WorkflowDefinitionStatus

MAX_TITLE_LENGTH = 255
MAX_TEXT_LENGTH = 50_000
MAX_TYPE_LENGTH = 64
MAX_DEPENDENCIES = 100
MAX_RETRIES = 100
MAX_STEPS = 100
MAX_STEP_NAME_LENGTH = 64
# A wait is scheduled, not slept: it holds no worker, so it may be long.
MAX_WAIT_SECONDS = 86_400
# How long an agent_task step (or any step) may wait at most before it times out: 30 days.
MAX_TIMEOUT_SECONDS = 30 * 86_400
MAX_STEP_RETRIES = 10
MAX_BACKOFF_SECONDS = 3_600
STEP_NAME_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_STEP_NAME_LENGTH - 1}}}$")
# A `{{ input.key }}` or `{{ steps.<name>.<path> }}` inside a step's params.
REFERENCE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
# A workflow's own status describes the definition; runs carry their own status.
WORKFLOW_DEFINITION_STATUSES = tuple(WorkflowDefinitionStatus.values)
CONDITION_STATUSES = ("completed", "skipped", "failed")
STEP_PREDICATES = frozenset({"status", "result_count_gte", "result_count_lte", "result_count_eq"})
INPUT_PREDICATES = frozenset({"equals", "exists"})
STEP_KEYS = frozenset({"name", "action", "params", "depends_on", "when", "condition", "description", "retries",
                       "retry_backoff_seconds", "timeout_seconds", "on_failure"})
ON_FAILURE = ("fail_run", "continue")


# The config of a contract that refuses unknown keys (it words the refusal in `unknown_field_message`).
FORBID_UNKNOWN = {**Contract.model_config, "extra": "forbid"}


def refuse_at(location: tuple, message: str, value: Any = None, title: str = "Step"):
    """Refuse `value` at `location` (relative to what is being validated) with `message` (FIELD for its path)."""
    raise ValidationError.from_exception_data(title, [InitErrorDetails(
        type="value_error", loc=location, input=value, ctx={"error": FieldError(message)})])


def references_in(value) -> list[str]:
    """Every `{{ ... }}` inside a params value, depth first."""
    if isinstance(value, str):
        return REFERENCE.findall(value)
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in references_in(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references_in(item)]
    return []


# --- Field types shared by the task operations ---------------------------------------------------

def _clean_task_type(value, field: str) -> str:
    return validation.text(value, field, max_length=MAX_TYPE_LENGTH, default="general")


def _clean_dependencies(value, field: str) -> list[uuid.UUID] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise FieldError(f"{field} must be a list of task ids.")
    if len(value) > MAX_DEPENDENCIES:
        raise FieldError(f"A task has at most {MAX_DEPENDENCIES} dependencies.")
    return list(dict.fromkeys(validation.uuid_value(item, field, message=f"{field} must hold UUIDs.") for item in value))


def _clean_error(value, field: str) -> str | None:
    return None if value is None else validation.text(value, field, max_length=MAX_TEXT_LENGTH)


Title = fields.text(MAX_TITLE_LENGTH, required=True, description="Short title, 1-255 characters.")
Description = fields.text(MAX_TEXT_LENGTH, description="What has to be done (at most 50,000 characters).")
TaskType = fields.value(_clean_task_type, Annotated[str, Field(max_length=MAX_TYPE_LENGTH)],
                        description="Free text kind of task, at most 64 characters; default 'general'.")
Priority = fields.choice(TaskPriority.values, description="Priority.")
Status = fields.choice(TaskStatus.values, description=(
    "Status: completed, cancelled and skipped are final; a task cannot start or complete before its dependencies."))
NamespaceSlug = fields.optional_text(MAX_NAMESPACE_LENGTH, description="Namespace slug; defaults to your home namespace.")
Assignee = fields.optional_text(MAX_AGENT_ID_LENGTH, description="The agent to give the task to (empty: nobody).")
Dependencies = fields.value(
    _clean_dependencies, Annotated[list[uuid.UUID], Field(max_length=MAX_DEPENDENCIES)] | None,
    description="UUIDs of tasks that must complete first (at most 100).")
Tags = fields.tags(description="Tags (1-64 characters each, at most 50).")
Metadata = fields.json_object(max_depth=MAX_METADATA_DEPTH, description="Free JSON object (at most 8 levels deep).")
DueAt = fields.optional_datetime(description="Deadline, ISO 8601.")
MaxRetries = fields.integer(0, MAX_RETRIES, description="Retries allowed after failure, 0-100.")
Progress = fields.optional_number(0.0, 1.0, description="Progress from 0 to 1.")
Result = Annotated[Any, fields.cleaned_by(validation.json_value),
                   Field(description="Any JSON value describing the outcome.")]
ErrorText = fields.value(_clean_error, Annotated[str, Field(max_length=MAX_TEXT_LENGTH)] | None,
                         description="What went wrong (for status 'failed').")
TaskId = Annotated[str, Field(description="The task's UUID.")]


# --- Tasks ---------------------------------------------------------------------------------------

class CreateTask(Contract):
    """A new task, in a namespace you may write to (an agent's home namespace by default)."""

    model_config = FORBID_UNKNOWN
    unknown_field_message = "Unknown field '{field}'."

    title: Title
    description: Description = ""
    task_type: TaskType = "general"
    priority: Priority = TaskPriority.MEDIUM.value
    status: Status = TaskStatus.PENDING.value
    namespace: NamespaceSlug = None
    assigned_agent_id: Assignee = None
    dependencies: Dependencies = None
    tags: Tags = []
    metadata: Metadata = {}
    due_at: DueAt = None
    max_retries: MaxRetries = 3


class UpdateTask(Contract):
    """The fields to change; those left out keep their value. Status, progress, result and error move as
    the status operation moves them."""

    model_config = FORBID_UNKNOWN
    unknown_field_message = "Unknown field '{field}'."

    # Not given: left as it is. A null resets description, task_type, tags, metadata and due_at, unassigns the
    # task and clears its dependencies; a null title, priority, status or max_retries is refused.
    title: Title = None
    description: Description = None
    task_type: TaskType = None
    priority: Priority = None
    status: Status = None
    namespace: Annotated[NamespaceSlug, Field(description="Move to this namespace (it cannot be removed).")] = None
    assigned_agent_id: Assignee = None
    dependencies: Dependencies = None
    tags: Tags = None
    metadata: Annotated[Metadata, Field(description="Replaces the metadata object.")] = None
    due_at: DueAt = None
    max_retries: MaxRetries = None
    progress: Progress = None
    result: Result = None
    error: ErrorText = None


class UpdateTaskStatus(Contract):
    """A status move, with optional progress, result and error."""

    status: Status
    progress: Progress = None
    result: Result = None
    error: ErrorText = None


class CompleteTask(Contract):
    result: Result = None


class AssignTask(Contract):
    agent_id: Annotated[Assignee, Field(description="The agent to give the task to; null or empty unassigns it.")]

    @model_validator(mode="before")
    @classmethod
    def _agent_id_given(cls, data):
        if isinstance(data, dict) and "agent_id" not in data:
            refuse_at(("agent_id",), f"{FIELD} is required (null unassigns).", title=cls.__name__)
        return data


# --- Workflow steps --------------------------------------------------------------------------------

class AssignTaskParams(AssignTask):
    """The params of an assign_task step."""

    task_id: TaskId


class TaskStatusParams(UpdateTaskStatus):
    """The params of an update_task_status step."""

    model_config = FORBID_UNKNOWN
    unknown_field_message = "Unknown param '{field}'."

    task_id: TaskId


def _clean_seconds(value, field: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_WAIT_SECONDS:
        raise FieldError(f"{field} must be a number from 0 to {MAX_WAIT_SECONDS}.")
    return value


class Wait(Contract):
    """The params of a wait step."""

    seconds: fields.value(_clean_seconds, Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS)]
                          | Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)],
                          description=f"How long to wait, 0 to {MAX_WAIT_SECONDS:,} seconds (scheduled: no worker is held).")


TimeoutSeconds = fields.optional_integer(1, MAX_TIMEOUT_SECONDS, description=(
    f"Seconds before the step times out, 1 to {MAX_TIMEOUT_SECONDS:,} (a timed-out attempt fails; the task it opened is "
    "cancelled)."))


class AgentTask(Contract):
    """The params of an agent_task step: a task for one agent, named or found by its capabilities."""

    model_config = FORBID_UNKNOWN
    unknown_field_message = "Unknown param '{field}'."

    title: Title
    description: Description = ""
    agent_id: fields.optional_text(MAX_AGENT_ID_LENGTH, description=(
        "The agent to give the task to (it must be able to read the workflow's namespace).")) = None
    capability: fields.json_object(description=(
        "Instead of agent_id: the task goes to an active agent of the workflow's namespace whose capabilities "
        "contain this object (the one with the fewest open tasks).")) = None
    priority: Priority = TaskPriority.MEDIUM.value
    task_type: TaskType = "general"
    tags: Tags = []
    timeout_seconds: TimeoutSeconds = None

    @model_validator(mode="after")
    def _one_assignee(self):
        check_one_assignee(self.agent_id, self.capability)
        return self

    @classmethod
    def check_literals(cls, value: dict) -> None:
        """When the workflow is saved: exactly one assignee, unless a reference decides it when the step runs."""
        if references_in(value.get("agent_id")) or references_in(value.get("capability")):
            return
        try:
            check_one_assignee(value.get("agent_id"), value.get("capability"))
        except FieldError as exc:
            refuse_at(("agent_id",), exc.message, value.get("agent_id"))


def check_one_assignee(agent_id, capability) -> None:
    """An agent_task names exactly one of agent_id and a non-empty capability."""
    if (agent_id not in (None, "")) == bool(capability):
        raise FieldError("An agent_task step gives exactly one of 'agent_id' and a non-empty 'capability'.")


# --- Runs ------------------------------------------------------------------------------------------

class StartRun(Contract):
    input: fields.json_object(description="The run's input, referred to by steps as {{ input.<key> }}.") = {}
