"""What /api/schema/ says about errors: the one error body, and which statuses each operation can answer.

Every operation documents, in the `Error` shape (core.errors.error_body), the refusals any request
can meet, added here so that views only name what is particular to them:

- 400 bad input (a body or query parameter of the wrong type, out of range, unknown, malformed JSON),
  401 missing or bad credentials, 429 throttled or too many requests in flight, 503 database unavailable
  (the last two with `Retry-After`): every operation;
- 403 refused (not the caller's to change, a role it lacks, or a session request without its CSRF token)
  and 413 body too large: every operation that changes state (POST, PATCH, PUT, DELETE);
- 404 not found or not visible (the two are never told apart): every operation with a path parameter,
  and every paginated list (a page past the last one).

A view adds the rest with `errors(...)` in its `extend_schema(responses=...)`: 409 where a write can
conflict, 403 on a read that can be refused, 404 on an operation without a path parameter that can
still answer it (`GET /agents/me` for an operator). 405, 406 and 415 are not listed: they answer a method, an `Accept` or a
`Content-Type` the operation does not document at all.
"""
from __future__ import annotations

import functools
import inspect

from django.db.models import Choices
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent, deep_import_string, list_hash
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from pydantic.json_schema import GenerateJsonSchema
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS

DESCRIPTIONS = {
    400: "Bad input: a missing, malformed or out-of-range value, or an unknown name; `fields` names the culprits.",
    401: "No credentials, or an unknown, revoked or inactive key (`WWW-Authenticate: Bearer`).",
    403: "The caller is known but may not do this (it may read the object but not change it, or lacks the role); "
         "session-authenticated writes also need the CSRF token.",
    404: "Not found, or not visible to the caller: the two are not told apart.",
    409: "The request conflicts with the current state (a duplicate name, something still in use, a finished run).",
    413: "The request body is larger than TMWS_MAX_REQUEST_BYTES.",
    429: "Throttled, or the agent already has its maximum number of requests in flight; retry after `Retry-After` s.",
    503: "The database is unavailable; retry after `Retry-After` s.",
}
PAGE_NOT_FOUND = "No such page: `page` is past the last one."
NOT_FOUND_OR_PAGE = f"{DESCRIPTIONS[404]} Or no such page: `page` is past the last one."
RETRY_AFTER = OpenApiParameter(
    "Retry-After", int, OpenApiParameter.HEADER, response=[429, 503], description="Seconds to wait before retrying.",
)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable: invalid, malformed, not_authenticated, permission_denied, "
                                           "not_found, duplicate, too_large, throttled, too_many_in_flight, ...")
    message = serializers.CharField(help_text="For humans; names the first field at fault.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="Messages per field at fault (dotted paths into the body, `non_field_errors` for the whole).",
    )
    request_id = serializers.CharField(required=False, help_text="Names the request in the operator's logs.")


class ErrorSerializer(serializers.Serializer):
    """The one error shape every refusal answers with."""

    error = ErrorDetailSerializer()


def errors(*statuses: int | tuple[int, str]) -> dict[int, OpenApiResponse]:
    """Error responses for `extend_schema(responses=...)`: a status, or (status, what it means here)."""
    responses = {}
    for entry in statuses:
        status, description = entry if isinstance(entry, tuple) else (entry, DESCRIPTIONS[entry])
        responses[status] = OpenApiResponse(ErrorSerializer, description=description)
    return responses


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema plus the error responses every operation of its kind can answer."""

    def common_errors(self) -> dict[int, OpenApiResponse]:
        statuses: list[int | tuple[int, str]] = [400, 401, 429, 503]
        if self.method not in SAFE_METHODS:
            statuses += [403, 413]
        has_path_parameter = "{" in self.path
        is_page = self._is_list_view() and self._get_paginator() is not None
        if has_path_parameter and is_page:
            statuses.append((404, NOT_FOUND_OR_PAGE))
        elif has_path_parameter:
            statuses.append(404)
        elif is_page:
            statuses.append((404, PAGE_NOT_FOUND))
        return errors(*statuses)

    def get_override_parameters(self):
        return [*super().get_override_parameters(), RETRY_AFTER]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status, response in self.common_errors().items():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(response, str(status), direction=direction)
        return dict(sorted(responses.items()))


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """Agents (and operator scripts) send `Authorization: Bearer <api key>`."""

    target_class = "agents.authentication.BearerKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer <key>`."}


@functools.cache
def _named_choice_sets() -> dict[frozenset, list[tuple]]:
    """The labelled choices of each TextChoices named in ENUM_NAME_OVERRIDES, by their set of values."""
    sets = {}
    for choices in spectacular_settings.ENUM_NAME_OVERRIDES.values():
        choices = deep_import_string(choices) if isinstance(choices, str) else choices
        if inspect.isclass(choices) and issubclass(choices, Choices):
            sets[frozenset(choices.values)] = [(value, label) for value, label in choices.choices]
    return sets


class OpenApi30JsonSchema(GenerateJsonSchema):
    """Pydantic's JSON schema in OpenAPI 3.0's dialect: `nullable: true` where JSON Schema says `type: null`.

    A contract's choice of the values of a TextChoices named in ENUM_NAME_OVERRIDES is marked as that
    enumeration, so requests and responses share one enum component (`AccessLevelEnum`).
    """

    def literal_schema(self, schema):
        result = super().literal_schema(schema)
        labelled = _named_choice_sets().get(frozenset(result.get("enum", ())))
        if labelled:
            result["x-spec-enum-id"] = list_hash(labelled)
        return result

    def nullable_schema(self, schema):
        inner = self.generate_inner(schema["schema"])
        if "$ref" in inner:
            return {"allOf": [inner], "nullable": True}
        return {**inner, "nullable": True}


class ContractExtension(OpenApiSerializerExtension):
    """Request bodies declared as contracts (core.contracts) appear as components named after the class."""

    target_class = "core.contracts.Contract"
    match_subclasses = True
    priority = 1  # before drf-spectacular's generic pydantic extension

    def get_name(self, auto_schema, direction):
        return self.target.__name__

    def map_serializer(self, auto_schema, direction):
        schema = self.target.model_json_schema(ref_template="#/components/schemas/{model}",
                                               schema_generator=OpenApi30JsonSchema)
        contracts = _contract_classes()
        for name, definition in schema.pop("$defs", {}).items():
            auto_schema.registry.register_on_missing(ResolvedComponent(
                name=name, type=ResolvedComponent.SCHEMA, object=contracts.get(name, name), schema=definition,
            ))
        return schema


def _contract_classes() -> dict[str, type]:
    """Every contract class by name (nested contracts appear as components of their own)."""
    from .contracts import Contract

    found, pending = {}, [Contract]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found
