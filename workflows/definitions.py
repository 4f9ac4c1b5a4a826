"""A workflow's definition: its steps, one contract per action of the registry, and the workflow contracts.

A step is `{"name", "action", "params"?, "depends_on"?, "when"?, "description"?, "retries"?,
"retry_backoff_seconds"?, "timeout_seconds"?, "on_failure"?}`. Its `params` are the params contract
of its action (workflows.actions declares each action once: its params, its handler, whether it
waits); a params value holding a `{{ ... }}` reference is taken as given when the workflow is saved
and checked once the reference is resolved, when the step runs; every other value is checked when
the workflow is saved. What needs the whole definition (unique names, known step references,
cycles) is checked by workflows.steps.
"""
from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union

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

from core import fields
from core.contracts import FIELD, Contract, FieldError, refusal

from .actions import ACTIONS, Action
from .choices import WorkflowStatus, WorkflowType
from .contracts import (
    CONDITION_STATUSES,
    FORBID_UNKNOWN,
    INPUT_PREDICATES,
    MAX_BACKOFF_SECONDS,
    MAX_STEP_NAME_LENGTH,
    MAX_STEP_RETRIES,
    MAX_STEPS,
    MAX_TEXT_LENGTH,
    MAX_TITLE_LENGTH,
    ON_FAILURE,
    STEP_KEYS,
    STEP_NAME_PATTERN,
    STEP_PREDICATES,
    WORKFLOW_DEFINITION_STATUSES,
    Description,
    Metadata,
    NamespaceSlug,
    Tags,
    TimeoutSeconds,
    references_in,
    refuse_at,
)

REFERENCES_NOTE = (" String values may refer to the run input or to an earlier step's output, {{ input.<key> }} or "
                   "{{ steps.<name>.<path> }}; such values are checked when the step runs.")
ACTION_NAMES = tuple(ACTIONS)


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
        check_literals = getattr(contract, "check_literals", None)
        if check_literals is not None:
            check_literals(value)
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
    retries: fields.integer(0, MAX_STEP_RETRIES, description=(
        f"How many times a failed attempt is tried again, 0-{MAX_STEP_RETRIES} (default 0).")) = 0
    retry_backoff_seconds: fields.number(0, MAX_BACKOFF_SECONDS, description=(
        "The wait before the first retry, doubled before each next one (default 1 second; at most an hour "
        "between attempts).")) = 1
    timeout_seconds: TimeoutSeconds = None
    on_failure: fields.choice(ON_FAILURE, description=(
        "fail_run (default): a step that fails for good fails the run; continue: the run goes on, and the "
        "failed step's error stays in its step run.")) = ON_FAILURE[0]

    def definition(self) -> dict:
        """The step as a workflow stores it (`condition` stored as `when`; policies only when given)."""
        stored = {"name": self.name, "action": self.action, "params": dict(self.params),
                  "depends_on": list(self.depends_on)}
        when = self.when if self.when is not None else self.condition
        if when is not None:
            stored["when"] = when.model_dump(exclude_unset=True)
        if self.description:
            stored["description"] = self.description
        for name in ("retries", "retry_backoff_seconds", "timeout_seconds", "on_failure"):
            if name in self.model_fields_set:
                stored[name] = getattr(self, name)
        return stored


def _step_class(action: Action) -> type[StepBase]:
    """The step contract of one action: its name as `action`, its params contract as `params`."""
    class_name = "".join(part.capitalize() for part in action.name.split("_")) + "Step"
    return create_model(class_name, __base__=StepBase, __doc__=action.description,
                        action=(step_action(action.name), ...), params=(step_params(action.name, action.params), ...))


STEP_CLASSES: dict[str, type[StepBase]] = {name: _step_class(action) for name, action in ACTIONS.items()}


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
        refuse_at(("action",), f"Unknown action '{str(action)[:64]}'; use one of {', '.join(ACTION_NAMES)}.", action)
    if "when" in value and "condition" in value:
        refuse_at(("when",), "Give either 'when' or 'condition', not both.", value["when"])
    return STEP_CLASSES[action].model_validate(value)


Step = Annotated[
    Union[tuple(STEP_CLASSES.values())],  # noqa: UP007  (a union built from the registry)
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
