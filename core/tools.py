"""The MCP tool registry: each app's `tools.py` registers plain functions with `@agent_tool(...)`.

A tool's first parameter receives the calling agent; the rest form its input schema. The server
(tmws_site.mcp_server) finds every app's tool module and serves what is registered here.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from .errors import InvalidInput, ServiceError


@dataclass(frozen=True)
class AgentTool:
    fn: Callable[..., Any]
    name: str
    title: str
    description: str
    read_only: bool
    destructive: bool


_registry: dict[str, AgentTool] = {}


def agent_tool(*, title: str, description: str, name: str | None = None, read_only: bool = False,
               destructive: bool = False):
    """Register `fn(agent, **arguments)` as an MCP tool; its other parameters form the input schema."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        tool_name = name or fn.__name__
        if tool_name in _registry and _registry[tool_name].fn is not fn:
            raise ValueError(f"Two MCP tools are named {tool_name!r}; keep one tool per name.")
        _registry[tool_name] = AgentTool(fn, tool_name, title, description.strip(), read_only, destructive)
        return fn

    return register


def tool_error(exc: ServiceError) -> ToolError:
    """The client-facing form of a refusal: its code, message and the field at fault."""
    field = f" (field: {exc.field})" if exc.field else ""
    return ToolError(f"[{exc.code}] {exc.message}{field}")


def filtered(filterset_class, queryset, **values):
    """`queryset` narrowed by an app's list filters, as the REST API narrows it for the same parameters.

    One declaration (the app's `filters.py`) serves both surfaces; None leaves a filter out.
    """
    filterset = filterset_class(data={name: value for name, value in values.items() if value is not None},
                                queryset=queryset)
    if not filterset.is_valid():
        field, messages = next(iter(filterset.errors.items()))
        raise InvalidInput(f"{field}: {' '.join(messages)}", field=field)
    return filterset.qs


def given(**arguments) -> dict:
    """The tool arguments the caller gave: those not left at None, for a service that applies its own defaults."""
    return {name: value for name, value in arguments.items() if value is not None}


def render_json(value: Any) -> Any:
    """Plain JSON types only (UUIDs, datetimes and decimals as strings) for tool results."""
    from django.core.serializers.json import DjangoJSONEncoder

    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def registered() -> list[AgentTool]:
    """The tools registered so far (tmws_site.mcp_server imports every app's tool module first)."""
    return list(_registry.values())
