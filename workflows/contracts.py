"""The input of every task, workflow and run operation, declared once (core.contracts).

REST views parse request bodies with these, MCP tools take them as their argument schema, the
OpenAPI document shows them, and the admin builds them from its forms; workflows.services and
workflows.runs receive the parsed instances.

A workflow's steps are contracts too: one `Step` class per action, each with its params contract
(the same contract the action's service takes, `CreateTask` for create_task, `StoreMemory` for
store_memory, ...). A params value holding a `{{ ... }}` reference is taken as given when the workflow
is saved and checked once the reference is resolved, when the step runs; every other value is
checked when the workflow is saved. What needs the whole definition (unique names, known step
references, cycles) is checked by workflows.steps.
"""
from __future__ import annotations

import functools
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    WrapValidator,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails

from core import fields, validation
from core.contracts import FIELD, Contract, FieldError, refusal
from memories.contracts import (
    MAX_AGENT_ID_LENGTH,
    MAX_METADATA_DEPTH,
    MAX_NAMESPACE_LENGTH,
    SearchMemories,
    StoreMemory,
)

from .choices import TaskPriority, TaskStatus, WorkflowDefinitionStatus, WorkflowStatus, WorkflowType

MAX_TITLE_LENGTH = 255
MAX_TEXT_LENGTH = 50_000
MAX_TYPE_LENGTH = 64
MAX_DEPENDENCIES = 100
MAX_RETRIES = 100
MAX_STEPS = 100
MAX_STEP_NAME_LENGTH = 64
MAX_WAIT_SECONDS = 60
STEP_NAME_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_STEP_NAME_LENGTH - 1}}}$")
# A `{{ input.key }}` or `{{ steps.<name>.<path> }}` inside a step's params.
REFERENCE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
# A workflow's own status describes the definition; runs carry their own status.
WORKFLOW_DEFINITION_STATUSES = tuple(WorkflowDefinitionStatus.values)
CONDITION_STATUSES = ("completed", "skipped")
STEP_PREDICATES = frozenset({"status", "result_count_gte", "result_count_lte", "result_count_eq"})
INPUT_PREDICATES = frozenset({"equals", "exists"})
STEP_KEYS = frozenset({"name", "action", "params", "depends_on", "when", "condition", "description"})


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
                          description="How long to wait, 0-60 seconds.")


# Each action's params: the contract its service takes.
STEP_PARAMS: dict[str, type[Contract]] = {
    "create_task": CreateTask,
    "assign_task": AssignTaskParams,
    "update_task_status": TaskStatusParams,
    "store_memory": StoreMemory,
    "search_memories": SearchMemories,
    "wait": Wait,
}
REFERENCES_NOTE = (" String values may refer to the run input or to an earlier step's output, {{ input.<key> }} or "
                   "{{ steps.<name>.<path> }}; such values are checked when the step runs.")


def _unless_reference(value, handler):
    return value if references_in(value) else handler(value)


@functools.cache
def _literal_values(contract: type[Contract]) -> type[BaseModel]:
    """`contract` with every field optional and references taken as given: what a step's params say up front."""
    optional = {
        name: (Annotated[info.annotation, *info.metadata, WrapValidator(_unless_reference)], None)
        for name, info in contract.model_fields.items()
    }
    return create_model(f"{contract.__name__}Literals", __config__=ConfigDict(arbitrary_types_allowed=True), **optional)


def _params_checker(action: str, contract: type[Contract]):
    def check(value, handler):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise FieldError(f"{FIELD} must be a JSON object.")
        for name, info in contract.model_fields.items():
            if info.is_required() and value.get(name) in (None, ""):
                refuse_at((name,), f"The action '{action}' needs the param '{name}'.", value.get(name))
        if contract.model_config.get("extra") == "forbid":
            unknown = sorted(str(key) for key in value if key not in contract.model_fields)
            if unknown:
                refuse_at((unknown[0][:64],), contract.unknown_field_message, value[unknown[0]])
        _literal_values(contract).model_validate(value)
        return value  # as given: the contract parses it (`handler`'s work) once references are resolved, at run time

    return WrapValidator(check)


def step_params(action: str, contract: type[Contract]):
    """A step's params: `contract`'s fields; references are checked when the step runs."""
    return Annotated[contract, _params_checker(action, contract), Field(
        default_factory=dict, validate_default=True,
        description=f"The params of {action} (the fields of {contract.__name__}).{REFERENCES_NOTE}")]


def step_action(name: str):
    return Annotated[Literal[name], WithJsonSchema({"type": "string", "enum": [name]}),
                     Field(description="What the step does.")]


def _clean_step_name(value, field: str) -> str:
    if not isinstance(value, str) or not STEP_NAME_PATTERN.match(value):
        raise FieldError(f"A step name is 1-{MAX_STEP_NAME_LENGTH} letters, digits, '_' or '-', "
                         "starting with a letter or digit.")
    return value


def _clean_depends_on(value, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FieldError(f"{field} must be a list of step names.")
    return list(dict.fromkeys(value))


def _clean_count(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FieldError(f"{field} must be a non-negative integer.")
    return value


def _clean_input_key(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise FieldError(f"{field} must name a key of the run input.")
    return value


ResultCount = fields.value(_clean_count, Annotated[int, Field(ge=0)])


class StepCondition(Contract):
    """Run the step only if an earlier step ended so (status) or produced so many results (its output's count)."""

    step: Annotated[str, Field(description="The name of an earlier step.")]
    status: fields.choice(CONDITION_STATUSES, description="The earlier step's status.") = None
    result_count_gte: Annotated[ResultCount, Field(description="At least this many results.")] = None
    result_count_lte: Annotated[ResultCount, Field(description="At most this many results.")] = None
    result_count_eq: Annotated[ResultCount, Field(description="Exactly this many results.")] = None

    @model_validator(mode="after")
    def _has_a_predicate(self):
        if not self.model_fields_set & STEP_PREDICATES:
            raise FieldError(f"A step condition needs one of {', '.join(sorted(STEP_PREDICATES))}.")
        return self


class InputCondition(Contract):
    """Run the step only if a key of the run input equals a value, or exists (or not)."""

    input: fields.value(_clean_input_key, Annotated[str, Field(min_length=1)],
                        description="A key of the run input (dots go deeper: 'ticket.priority').")
    equals: Annotated[Any, Field(description="The value the key must hold.")] = None
    exists: fields.flag(description="Whether the key must be there (true) or absent (false).") = None

    @model_validator(mode="after")
    def _has_a_predicate(self):
        if not self.model_fields_set & INPUT_PREDICATES:
            raise FieldError("An input condition needs 'equals' or 'exists'.")
        return self


def _condition(value):
    if value is None or isinstance(value, (StepCondition, InputCondition)):
        return value
    if not isinstance(value, dict) or not value:
        raise FieldError("A condition must be a non-empty object.")
    if ("step" in value) == ("input" in value):
        raise FieldError("A condition names exactly one of 'step' or 'input'.")
    kind, noun = (StepCondition, "a step") if "step" in value else (InputCondition, "an input")
    unknown = sorted(str(key) for key in value if key not in kind.model_fields)
    if unknown:
        raise FieldError(f"Unknown condition key '{unknown[0][:64]}' for {noun} condition.")
    return kind.model_validate(value)


Condition = Annotated[StepCondition | InputCondition | None, BeforeValidator(_condition), Field(
    description="Skip the step unless this holds: {step, status?, result_count_gte|lte|eq?} or {input, equals?, exists?}.")]


class StepBase(Contract):
    """What every step says besides its action and params."""

    name: fields.value(_clean_step_name, Annotated[str, Field(pattern=STEP_NAME_PATTERN.pattern)],
                       description="Unique in the workflow: 1-64 letters, digits, '_' or '-'.")
    description: fields.text(MAX_TEXT_LENGTH, strip=False, description="What the step is for.") = ""
    depends_on: fields.value(_clean_depends_on, list[str],
                             description="Steps that must have finished first (parallel, conditional and hybrid "
                                         "workflows; sequential ones run in list order).") = []
    when: Condition = None
    condition: Annotated[Condition, Field(description="Another name for when.")] = None

    def definition(self) -> dict:
        """The step as a workflow stores it (`condition` stored as `when`)."""
        stored = {"name": self.name, "action": self.action, "params": dict(self.params),
                  "depends_on": list(self.depends_on)}
        when = self.when if self.when is not None else self.condition
        if when is not None:
            stored["when"] = when.model_dump(exclude_unset=True)
        if self.description:
            stored["description"] = self.description
        return stored


class CreateTaskStep(StepBase):
    action: step_action("create_task")
    params: step_params("create_task", CreateTask)


class AssignTaskStep(StepBase):
    action: step_action("assign_task")
    params: step_params("assign_task", AssignTaskParams)


class UpdateTaskStatusStep(StepBase):
    action: step_action("update_task_status")
    params: step_params("update_task_status", TaskStatusParams)


class StoreMemoryStep(StepBase):
    action: step_action("store_memory")
    params: step_params("store_memory", StoreMemory)


class SearchMemoriesStep(StepBase):
    action: step_action("search_memories")
    params: step_params("search_memories", SearchMemories)


class WaitStep(StepBase):
    action: step_action("wait")
    params: step_params("wait", Wait)


STEP_CLASSES: dict[str, type[StepBase]] = {
    "create_task": CreateTaskStep,
    "assign_task": AssignTaskStep,
    "update_task_status": UpdateTaskStatusStep,
    "store_memory": StoreMemoryStep,
    "search_memories": SearchMemoriesStep,
    "wait": WaitStep,
}
ACTIONS = tuple(STEP_CLASSES)


def _step(value):
    """The step class its action names, validated (so a refusal names the step's own fields)."""
    if isinstance(value, StepBase):
        return value
    if not isinstance(value, dict):
        raise FieldError("Each step must be an object.")
    unknown = sorted(str(key) for key in value if key not in STEP_KEYS)
    if unknown:
        refuse_at((unknown[0][:64],), f"Unknown step key '{unknown[0][:64]}'.", value[unknown[0]])
    action = value.get("action")
    if not isinstance(action, str) or action not in STEP_CLASSES:
        refuse_at(("action",), f"Unknown action '{str(action)[:64]}'; use one of {', '.join(ACTIONS)}.", action)
    if "when" in value and "condition" in value:
        refuse_at(("when",), "Give either 'when' or 'condition', not both.", value["when"])
    return STEP_CLASSES[action].model_validate(value)


Step = Annotated[
    CreateTaskStep | AssignTaskStep | UpdateTaskStatusStep | StoreMemoryStep | SearchMemoriesStep | WaitStep,
    Field(discriminator="action"),
    BeforeValidator(_step),
]


def _step_list(value, field: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(f"{field} must be a list of step objects.")
    if len(value) > MAX_STEPS:
        raise FieldError(f"A workflow has at most {MAX_STEPS} steps.")
    return value


Steps = Annotated[Annotated[list[Step], Field(max_length=MAX_STEPS)], fields.cleaned_by(_step_list), Field(
    description="The steps (at most 100); names are unique, depends_on and references name other steps.")]
_STEPS = TypeAdapter(Steps)


def parse_steps(value) -> list[StepBase]:
    """A workflow's steps (parsed JSON, e.g. as stored) as contracts, or InvalidInput naming the step at fault."""
    try:
        return _STEPS.validate_python(value)
    except ValidationError as exc:
        raise refusal(exc, "steps") from None


# --- Workflows and runs ----------------------------------------------------------------------------

WorkflowName = fields.text(MAX_TITLE_LENGTH, required=True, description="Name, 1-255 characters.")
Kind = fields.choice(WorkflowType.values, description=(
    "sequential: steps run in list order; parallel, conditional, hybrid: in the order their dependencies allow."))
DefinitionStatus = fields.choice(WORKFLOW_DEFINITION_STATUSES, description="draft, active or inactive (not runnable).")
Config = fields.json_object(description="Free JSON object.")


class CreateWorkflow(Contract):
    """A new workflow; its steps are checked (actions, params, names, dependencies, cycles) up front."""

    model_config = FORBID_UNKNOWN
    unknown_field_message = "Unknown field '{field}'."

    name: WorkflowName
    description: Description = ""
    workflow_type: Kind = WorkflowType.SEQUENTIAL.value
    status: DefinitionStatus = WorkflowStatus.DRAFT.value
    steps: Steps = []
    config: Config = {}
    tags: Tags = []
    namespace: NamespaceSlug = None
    metadata: Metadata = {}


class UpdateWorkflow(Contract):
    """The fields to change; runs already started keep the steps they started with."""

    model_config = FORBID_UNKNOWN
    unknown_field_message = "Unknown field '{field}'."

    name: WorkflowName = None
    description: Description = None
    workflow_type: Kind = None
    status: DefinitionStatus = None
    steps: Annotated[Steps, Field(description="Replaces the steps.")] = None
    config: Config = None
    tags: Tags = None
    namespace: Annotated[NamespaceSlug, Field(description="Move to this namespace (it cannot be removed).")] = None
    metadata: Annotated[Metadata, Field(description="Replaces the metadata object.")] = None


class StartRun(Contract):
    input: fields.json_object(description="The run's input, referred to by steps as {{ input.<key> }}.") = {}
