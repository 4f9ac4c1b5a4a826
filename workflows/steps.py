"""The workflow step format: validation, execution order, conditions and `{{ ... }}` references.

A step is `{"name", "action", "params"?, "depends_on"?, "when"?, "description"?}`. Names are
unique identifiers; `depends_on` names steps that must run first; `when` is a condition on
the run input or on an earlier step that skips the step when false; string values in
`params` may refer to the run input or to an earlier step's output with `{{ input.key }}`
or `{{ steps.<name>.<path> }}`. Everything here is pure: no database access.
"""
from __future__ import annotations

import heapq
import re
from dataclasses import dataclass

from core import validation
from core.errors import InvalidInput

from .models import TaskStatus, WorkflowType

MAX_STEPS = 100
MAX_WAIT_SECONDS = 60
STEP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
REFERENCE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
STEP_KEYS = {"name", "action", "params", "depends_on", "when", "condition", "description"}

# Each action and the params it cannot do without (values are checked again when the step runs).
ACTIONS: dict[str, tuple[str, ...]] = {
    "create_task": ("title",),
    "assign_task": ("task_id", "agent_id"),
    "update_task_status": ("task_id", "status"),
    "store_memory": ("content",),
    "search_memories": ("query",),
    "wait": ("seconds",),
}

STEP_PREDICATES = {"status", "result_count_gte", "result_count_lte", "result_count_eq"}
INPUT_PREDICATES = {"equals", "exists"}
CONDITION_STATUSES = ("completed", "skipped")


@dataclass(frozen=True)
class Reference:
    """A `{{ root.path }}` found in params: root is "input" or "steps"; step names the step for "steps"."""

    text: str
    root: str
    step: str | None
    path: tuple[str, ...]


def parse_reference(text: str) -> Reference | None:
    parts = tuple(text.split("."))
    if parts[0] == "input":
        return Reference(text, "input", None, parts[1:])
    if parts[0] == "steps" and len(parts) >= 2 and parts[1]:
        return Reference(text, "steps", parts[1], parts[2:])
    return None


def references_in(value) -> list[str]:
    """Every `{{ ... }}` inside a params value, depth first."""
    if isinstance(value, str):
        return REFERENCE.findall(value)
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in references_in(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references_in(item)]
    return []


def is_reference(value) -> bool:
    return isinstance(value, str) and REFERENCE.fullmatch(value.strip()) is not None


def referenced_steps(step: dict) -> set[str]:
    """Steps whose output this step's params use; if one of them is skipped, so is this step."""
    names = set()
    for text in references_in(step.get("params", {})):
        ref = parse_reference(text)
        if ref is not None and ref.step:
            names.add(ref.step)
    return names


def predecessors(step: dict) -> set[str]:
    """Every step that must have finished before this one runs."""
    names = set(step.get("depends_on", [])) | referenced_steps(step)
    when = step.get("when")
    if when and when.get("step"):
        names.add(when["step"])
    return names


def _clean_condition(condition, field: str, names: set[str]) -> dict:
    if not isinstance(condition, dict) or not condition:
        raise InvalidInput("A condition must be a non-empty object.", field=field)
    if ("step" in condition) == ("input" in condition):
        raise InvalidInput("A condition names exactly one of 'step' or 'input'.", field=field)
    if "step" in condition:
        unknown = sorted(set(condition) - STEP_PREDICATES - {"step"})
        if unknown:
            raise InvalidInput(f"Unknown condition key '{unknown[0]}' for a step condition.", field=field)
        if not isinstance(condition["step"], str) or condition["step"] not in names:
            raise InvalidInput(f"The condition names an unknown step '{str(condition['step'])[:64]}'.", field=field)
        if not set(condition) & STEP_PREDICATES:
            raise InvalidInput(
                f"A step condition needs one of {', '.join(sorted(STEP_PREDICATES))}.", field=field
            )
        if "status" in condition:
            validation.choice(condition["status"], CONDITION_STATUSES, field)
        for key in STEP_PREDICATES - {"status"}:
            if key in condition:
                count = condition[key]
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise InvalidInput(f"{key} must be a non-negative integer.", field=field)
        return dict(condition)
    unknown = sorted(set(condition) - INPUT_PREDICATES - {"input"})
    if unknown:
        raise InvalidInput(f"Unknown condition key '{unknown[0]}' for an input condition.", field=field)
    if not isinstance(condition["input"], str) or not condition["input"]:
        raise InvalidInput("input must name a key of the run input.", field=field)
    if not set(condition) & INPUT_PREDICATES:
        raise InvalidInput("An input condition needs 'equals' or 'exists'.", field=field)
    if "exists" in condition and not isinstance(condition["exists"], bool):
        raise InvalidInput("exists must be true or false.", field=field)
    return dict(condition)


def _clean_params(action: str, params, field: str, names: set[str]) -> dict:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInput("params must be an object.", field=field)
    missing = [key for key in ACTIONS[action] if params.get(key) in (None, "")]
    if missing:
        raise InvalidInput(f"The action '{action}' needs the param '{missing[0]}'.", field=f"{field}.{missing[0]}")
    for text in references_in(params):
        ref = parse_reference(text)
        if ref is None:
            raise InvalidInput(
                f"'{{{{ {text[:64]} }}}}' must start with 'input.' or 'steps.<name>'.", field=field
            )
        if ref.step is not None and ref.step not in names:
            raise InvalidInput(f"'{{{{ {text[:64]} }}}}' names an unknown step.", field=field)
    if action == "wait" and not is_reference(params["seconds"]):
        seconds = params["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_WAIT_SECONDS:
            raise InvalidInput(f"seconds must be a number from 0 to {MAX_WAIT_SECONDS}.", field=f"{field}.seconds")
    if action == "update_task_status" and not is_reference(params["status"]):
        if params["status"] not in TaskStatus.values:
            raise InvalidInput(f"status must be one of {', '.join(TaskStatus.values)}.", field=f"{field}.status")
    return params


def clean_steps(steps, workflow_type: str = WorkflowType.SEQUENTIAL) -> list[dict]:
    """Validate a workflow's steps and return them normalised; every refusal names the step at fault."""
    if steps is None:
        return []
    if not isinstance(steps, list):
        raise InvalidInput("steps must be a list of step objects.", field="steps")
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"A workflow has at most {MAX_STEPS} steps.", field="steps")
    names: set[str] = set()
    for index, step in enumerate(steps):
        field = f"steps[{index}]"
        if not isinstance(step, dict):
            raise InvalidInput("Each step must be an object.", field=field)
        name = step.get("name")
        if not isinstance(name, str) or not STEP_NAME_PATTERN.match(name):
            raise InvalidInput(
                "A step name is 1-64 letters, digits, '_' or '-', starting with a letter or digit.",
                field=f"{field}.name",
            )
        if name in names:
            raise InvalidInput(f"Two steps are named '{name}'.", field=f"{field}.name")
        names.add(name)
    cleaned = []
    for index, step in enumerate(steps):
        field = f"steps[{index}]"
        unknown = sorted(set(step) - STEP_KEYS)
        if unknown:
            raise InvalidInput(f"Unknown step key '{unknown[0][:64]}'.", field=f"{field}.{unknown[0][:64]}")
        action = step.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            raise InvalidInput(
                f"Unknown action '{str(action)[:64]}'; use one of {', '.join(ACTIONS)}.", field=f"{field}.action"
            )
        depends_on = step.get("depends_on") or []
        if not isinstance(depends_on, list) or not all(isinstance(item, str) for item in depends_on):
            raise InvalidInput("depends_on must be a list of step names.", field=f"{field}.depends_on")
        for item in depends_on:
            if item == step["name"]:
                raise InvalidInput("A step cannot depend on itself.", field=f"{field}.depends_on")
            if item not in names:
                raise InvalidInput(f"depends_on names an unknown step '{item[:64]}'.", field=f"{field}.depends_on")
        if "when" in step and "condition" in step:
            raise InvalidInput("Give either 'when' or 'condition', not both.", field=f"{field}.when")
        condition = step.get("when", step.get("condition"))
        description = step.get("description", "")
        if not isinstance(description, str):
            raise InvalidInput("description must be a string.", field=f"{field}.description")
        normalised = {
            "name": step["name"],
            "action": action,
            "params": _clean_params(action, step.get("params"), f"{field}.params", names),
            "depends_on": list(dict.fromkeys(depends_on)),
        }
        if condition is not None:
            normalised["when"] = _clean_condition(condition, f"{field}.when", names)
        if description:
            normalised["description"] = description
        cleaned.append(normalised)
    execution_order(cleaned, workflow_type)  # refuses cycles and, for sequential workflows, forward references
    return cleaned


def execution_order(steps: list[dict], workflow_type: str = WorkflowType.SEQUENTIAL) -> list[int]:
    """Indexes of `steps` in the order one worker runs them.

    Sequential workflows run in list order and may only look back. The others run in
    topological order of their dependencies, earlier list position first among ready steps.
    """
    position = {step["name"]: index for index, step in enumerate(steps)}
    if workflow_type == WorkflowType.SEQUENTIAL:
        for index, step in enumerate(steps):
            later = sorted(name for name in predecessors(step) if position[name] >= index)
            if later:
                raise InvalidInput(
                    f"Step '{step['name']}' refers to '{later[0]}', which runs later: "
                    "sequential workflows run in list order.",
                    field=f"steps[{index}].depends_on",
                )
        return list(range(len(steps)))
    waiting_on = {index: {position[name] for name in predecessors(step)} for index, step in enumerate(steps)}
    dependents: dict[int, list[int]] = {index: [] for index in waiting_on}
    for index, before in waiting_on.items():
        for other in before:
            dependents[other].append(index)
    ready = [index for index, before in waiting_on.items() if not before]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for dependent in dependents[index]:
            waiting_on[dependent].discard(index)
            if not waiting_on[dependent]:
                heapq.heappush(ready, dependent)
    if len(order) < len(steps):
        stuck = min(set(waiting_on) - set(order))
        raise InvalidInput(
            f"The steps' dependencies form a cycle (through '{steps[stuck]['name']}').",
            field=f"steps[{stuck}].depends_on",
        )
    return order


_MISSING = object()


def lookup(value, path: tuple[str, ...]):
    """Follow `path` through objects (keys) and lists (indexes); _MISSING when it leads nowhere."""
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def resolve(value, context: dict):
    """Replace references in a params value: a whole-string reference keeps the referred value's type."""
    if isinstance(value, dict):
        return {key: resolve(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    whole = REFERENCE.fullmatch(value.strip())
    if whole:
        return _resolve_one(whole.group(1), context)

    def substitute(match: re.Match) -> str:
        found = _resolve_one(match.group(1), context)
        return found if isinstance(found, str) else _json(found)

    return REFERENCE.sub(substitute, value)


def _json(value) -> str:
    import json

    return json.dumps(value, default=str)


def _resolve_one(text: str, context: dict):
    ref = parse_reference(text)
    if ref is None:
        raise InvalidInput(f"'{{{{ {text[:64]} }}}}' is not a reference.", field="params")
    source = context["input"] if ref.root == "input" else context["steps"].get(ref.step, _MISSING)
    found = _MISSING if source is _MISSING else lookup(source, ref.path)
    if found is _MISSING:
        raise InvalidInput(f"'{{{{ {text[:64]} }}}}' does not resolve to a value.", field="params")
    return found


def result_count(output) -> int | None:
    """How many results a step produced: its output's `count`, or the length of a list output."""
    if isinstance(output, dict) and isinstance(output.get("count"), int):
        return output["count"]
    if isinstance(output, list):
        return len(output)
    return None


def condition_holds(condition: dict, run_input: dict, statuses: dict, outputs: dict) -> bool:
    """Whether a step's `when` holds, given the run input and the steps finished so far."""
    if "input" in condition:
        found = lookup(run_input, tuple(condition["input"].split(".")))
        if "exists" in condition and (found is not _MISSING) != condition["exists"]:
            return False
        return "equals" not in condition or (found is not _MISSING and found == condition["equals"])
    name = condition["step"]
    if "status" in condition and statuses.get(name) != condition["status"]:
        return False
    count_keys = STEP_PREDICATES - {"status"}
    if not set(condition) & count_keys:
        return True
    count = result_count(outputs.get(name)) if statuses.get(name) == "completed" else None
    if count is None:
        return False
    return (
        count >= condition.get("result_count_gte", count)
        and count <= condition.get("result_count_lte", count)
        and count == condition.get("result_count_eq", count)
    )
