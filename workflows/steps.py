"""Workflow steps beyond their contracts: checks of the whole definition, ordering, conditions, references.

A step is declared by the `Step` contracts of workflows.definitions, which check each step on its own (action, params, shapes,
limits). What needs the whole definition is checked here: names are unique, `depends_on` and
conditions name other steps, string values in `params` refer to the run input or to an earlier
step's output with `{{ input.key }}` or `{{ steps.<name>.<path> }}`, and the dependencies form no
cycle. Everything here is pure: no database access.
"""
from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import InvalidInput

from .contracts import REFERENCE, STEP_PREDICATES, references_in
from .definitions import StepBase, StepCondition, parse_steps
from .models import WorkflowType


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


def _check_references(step: StepBase, field: str, names: set[str]) -> None:
    for text in references_in(step.params):
        ref = parse_reference(text)
        if ref is None:
            raise InvalidInput(f"'{{{{ {text[:64]} }}}}' must start with 'input.' or 'steps.<name>'.", field=field)
        if ref.step is not None and ref.step not in names:
            raise InvalidInput(f"'{{{{ {text[:64]} }}}}' names an unknown step.", field=field)


def check_steps(steps: Sequence[StepBase], workflow_type: str = WorkflowType.SEQUENTIAL) -> list[dict]:
    """The steps as a workflow stores them, once the names they use are checked against each other.

    Refuses two steps of one name, a `depends_on`, condition or reference naming no step (or the step
    itself), cycles, and, in sequential workflows, references to later steps.
    """
    names: set[str] = set()
    for index, step in enumerate(steps):
        if step.name in names:
            raise InvalidInput(f"Two steps are named '{step.name}'.", field=f"steps[{index}].name")
        names.add(step.name)
    for index, step in enumerate(steps):
        field = f"steps[{index}]"
        for item in step.depends_on:
            if item == step.name:
                raise InvalidInput("A step cannot depend on itself.", field=f"{field}.depends_on")
            if item not in names:
                raise InvalidInput(f"depends_on names an unknown step '{item[:64]}'.", field=f"{field}.depends_on")
        _check_references(step, f"{field}.params", names)
        condition = step.when if step.when is not None else step.condition
        if isinstance(condition, StepCondition) and condition.step not in names:
            raise InvalidInput(f"The condition names an unknown step '{condition.step[:64]}'.", field=f"{field}.when")
    cleaned = [step.definition() for step in steps]
    execution_order(cleaned, workflow_type)  # refuses cycles and, for sequential workflows, forward references
    return cleaned


def clean_steps(steps, workflow_type: str = WorkflowType.SEQUENTIAL) -> list[dict]:
    """Steps given as parsed JSON (a stored definition, say), checked and normalised; refusals name the step."""
    return check_steps(parse_steps(steps), workflow_type)


def waits_for(steps: list[dict], workflow_type: str = WorkflowType.SEQUENTIAL) -> dict[str, set[str]]:
    """For each step, the steps that must have finished before it starts.

    In sequential workflows that is the step before it as well as what it names; in the others only what it
    depends on, refers to, or has a condition on, so steps whose dependencies are met run side by side.
    """
    before = {step["name"]: predecessors(step) for step in steps}
    if workflow_type == WorkflowType.SEQUENTIAL:
        for previous, step in zip(steps, steps[1:], strict=False):
            before[step["name"]].add(previous["name"])
    return before


def execution_order(steps: list[dict], workflow_type: str = WorkflowType.SEQUENTIAL) -> list[int]:
    """Indexes of `steps` in an order that respects their dependencies (refusing cycles).

    Sequential workflows run in list order and may only look back. The others run in topological
    order of their dependencies, earlier list position first among ready steps (steps that are ready
    together run side by side).
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
