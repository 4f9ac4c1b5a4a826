"""Extension points: a higher layer plugs a function into a lower one that may not import it.

The persona-era compatibility layer (compat) provides two in its `AppConfig.ready`: v2 tools accept
persona-era arguments (a persona name where an agent id goes, `importance` for `learning_weight`) and
hand them to it. Without compat installed, such arguments are refused with a clear message instead.
`memories` provides `purge_agent`, which the agents API (a layer below) calls for `DELETE ...?purge=true`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import InvalidInput

# The extension points, and what each provided function does.
POINTS = {
    "persona_agent": "The agent a persona reference names (persona name, legacy UUID or agent UUID); NotFound if none.",
    "importance_to_learning_weight": "A persona-era importance (0..1) as a learning_weight (0..10).",
    "purge_agent": "Erase an agent and everything of it, or count what would go (memories.purge.purge_agent).",
}
# What a caller is told when nothing provides a point (the persona-era points: compat is not installed).
MISSING = {"purge_agent": "{field}: purging needs the memories app, which is not installed."}
PERSONA_ERA_MISSING = "{field} is a persona-era parameter, and the compatibility layer is not installed."

_provided: dict[str, Callable[..., Any]] = {}


def provide(point: str, function: Callable[..., Any]) -> None:
    """Plug `function` into `point` (once per process; providing the same function again is harmless)."""
    if point not in POINTS:
        raise ValueError(f"No extension point {point!r}; the points are {', '.join(POINTS)}.")
    if _provided.get(point, function) is not function:
        raise ValueError(f"Extension point {point!r} is already provided by {_provided[point].__qualname__}.")
    _provided[point] = function


def call(point: str, *args, field: str, **kwargs):
    """What the function provided for `point` answers; a 400 naming `field` when nothing provides it."""
    function = _provided.get(point)
    if function is None:
        raise InvalidInput(MISSING.get(point, PERSONA_ERA_MISSING).format(field=field), field=field)
    return function(*args, **kwargs)
