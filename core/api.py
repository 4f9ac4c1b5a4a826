"""Base API views: resolve the principal once and run agent requests under row-level security."""
from __future__ import annotations

import re

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from . import limits, validation
from .db import enter_agent_context, leave_agent_context
from .errors import InvalidInput, NotFound
from .principal import Principal

MAX_BODY_DEPTH = 32


def check_request_text(request, kwargs) -> None:
    """Refuse, before any handler runs, input the database would fail on instead of answering 500.

    URL identifiers that cannot exist answer 404; body and query strings answer 400 naming the
    field. Bodies nested deeper than MAX_BODY_DEPTH are refused too (JSON that nests too deeply
    for the parser raises RecursionError rather than a parse error).
    """
    for value in kwargs.values():
        if isinstance(value, str) and not validation.is_storable(value):
            raise NotFound("Not found.")
    for name, values in request.query_params.lists():
        if not validation.is_storable(name) or not all(validation.is_storable(value) for value in values):
            raise InvalidInput(f"{name[:64]!r} {validation.UNSTORABLE_MESSAGE}", field=name[:64])
    try:
        data = request.data
    except RecursionError:
        raise ParseError("JSON nests too deeply.") from None
    pending = [(data, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_BODY_DEPTH:
            top = re.split(r"[.\[]", path, maxsplit=1)[0]
            raise InvalidInput(f"The request body nests more than {MAX_BODY_DEPTH} levels deep.", field=top or None)
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not validation.is_storable(key):
                    raise InvalidInput(f"Keys {validation.UNSTORABLE_MESSAGE}", field=path or None)
                pending.append((item, child, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str):
            validation.storable(value, path or None)


def body_object(request) -> dict:
    """The request's JSON body, which must be an object."""
    if not isinstance(request.data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return request.data


class IgnoreAccept(BaseContentNegotiation):
    """For views whose answer has one format of its own (metrics, an export): errors are always JSON, whatever
    the Accept header asks for."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class PrincipalMixin:
    """Resolve the caller once and run agent requests under row-level security."""

    principal: Principal

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        check_request_text(request, kwargs)
        self.principal = Principal.of(request.user)
        if self.principal.agent is not None:
            # Before any work: a refused request costs the others nothing.
            self._in_flight_slot = limits.acquire(self.principal.agent)
        self._agent_context = self.principal.agent is not None
        if self._agent_context:
            enter_agent_context(self.principal.agent)

    def finalize_response(self, request, response, *args, **kwargs):
        if getattr(self, "_agent_context", False):
            leave_agent_context()
            self._agent_context = False
        slot = getattr(self, "_in_flight_slot", None)
        if slot is not None:
            limits.release(slot)
            self._in_flight_slot = None
        return super().finalize_response(request, response, *args, **kwargs)

    def get_authenticate_header(self, request):
        return "Bearer"


class BaseAPIView(PrincipalMixin, APIView):
    pass


class BaseViewSet(PrincipalMixin, GenericViewSet):
    """Viewsets narrow their queryset through `restrict(queryset)` before any handler runs."""

    def restrict(self, queryset):
        raise NotImplementedError

    def get_queryset(self):
        return self.restrict(super().get_queryset())
