"""The MCP tool registry: each app's `tools.py` registers plain functions with `@agent_tool(...)`.

A tool's first parameter receives the calling agent; the rest form its input schema. A parameter
annotated with a Contract (core.contracts) stands for that contract's fields: they become the
tool's arguments, with the contract's own JSON schema, and the body receives the parsed contract.
So a tool and the REST operation it mirrors share one declaration of their input. The server
(tmws_site.mcp_server) finds every app's tool module and serves what is registered here.
"""
from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, WithJsonSchema

from .contracts import Contract
from .errors import InvalidInput, ServiceError


@dataclass(frozen=True)
class AgentTool:
    fn: Callable[..., Any]
    name: str
    title: str
    description: str
    read_only: bool
    destructive: bool

    @functools.cached_property
    def _body_parameters(self) -> list[inspect.Parameter]:
        """The body's parameters after the agent, annotations evaluated (they may be source strings)."""
        parameters = list(inspect.signature(self.fn).parameters.values())[1:]
        return [
            parameter.replace(annotation=eval(parameter.annotation, self.fn.__globals__))
            if isinstance(parameter.annotation, str) else parameter
            for parameter in parameters
        ]

    def arguments(self) -> list[inspect.Parameter]:
        """The tool's arguments as keyword parameters: plain parameters as declared, contracts by field."""
        arguments = []
        for parameter in self._body_parameters:
            if _is_contract(parameter.annotation):
                arguments.extend(_contract_arguments(parameter.annotation))
            else:
                arguments.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        return arguments

    def bind(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The body's keyword arguments: contracts parsed from their fields (InvalidInput on a refusal)."""
        bound = {}
        for parameter in self._body_parameters:
            if _is_contract(parameter.annotation):
                names = parameter.annotation.model_fields
                given = {name: value for name, value in arguments.items() if name in names and value is not None}
                bound[parameter.name] = parameter.annotation.parse(given)
            elif parameter.name in arguments:
                bound[parameter.name] = arguments[parameter.name]
        return bound


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


def _is_contract(annotation) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, Contract)


def _inline(schema, definitions: dict):
    """`schema` with its `$ref`s to `definitions` replaced by what they name (tool arguments stand alone)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(definitions[schema["$ref"].rsplit("/", 1)[1]], definitions)
        return {key: _inline(value, definitions) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    return schema


def _contract_arguments(contract: type[Contract]) -> list[inspect.Parameter]:
    """One keyword parameter per field, carrying the field's JSON schema; the contract validates the values.

    An optional argument left out (or null) is not passed on, so the contract's default applies.
    """
    schema = contract.model_json_schema()
    definitions = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    arguments = []
    for name, field_schema in schema["properties"].items():
        field_schema = _inline(field_schema, definitions)
        if name in required:
            arguments.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                               annotation=Annotated[Any, WithJsonSchema(field_schema)]))
        else:
            shown = {"default": field_schema["default"]} if "default" in field_schema else None
            arguments.append(inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=None,
                annotation=Annotated[Any, WithJsonSchema(field_schema), Field(json_schema_extra=shown)],
            ))
    return arguments


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


def tool_for(fn: Callable[..., Any]) -> AgentTool:
    """The registration of a tool body."""
    return next(spec for spec in _registry.values() if spec.fn is fn)
