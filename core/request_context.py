"""Per-request context: a request id, and one JSON log line per request for operators.

The id comes from a sane incoming `X-Request-Id` (so a proxy's id follows the request through)
or is generated; it is answered in the `X-Request-Id` header and in every error body
(`core.errors.error_body`). The log line goes to the `tmws.requests` logger:

    {"request_id": ..., "agent": ..., "operator": ..., "method": ..., "route": ..., "status": ..., "duration_ms": ...}
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

logger = logging.getLogger("tmws.requests")

REQUEST_ID_HEADER = "X-Request-Id"
# Ids from outside are kept only when short and plain, so they can go into a log line and a header as they are.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tmws_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this thread or task, if any."""
    return _request_id.get()


def request_id_from(incoming: str | None) -> str:
    if incoming and SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


# `api/v2/memories/(?P<pk>[^/.]+)/?$` -> `/api/v2/memories/{pk}`
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def route_of(request) -> str | None:
    """The matched URL pattern with parameters named, not the path: ids would make every line unique."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return None
    route = _GROUP.sub(lambda group: "{" + group.group(1) + "}", match.route)
    route = route.lstrip("^").removesuffix("$").removesuffix("/?")
    return "/" + route


def _principal(request) -> tuple[str | None, str | None]:
    """(agent id, operator username) of the authenticated caller; DRF and the MCP view set request.user."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None
    agent = getattr(user, "agent", None)
    if agent is not None:
        return agent.agent_id, None
    return None, user.get_username()


class RequestContextMiddleware:
    """Name each request, answer its id, and log one JSON line when it is done."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        token = _request_id.set(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            self.log(request, response.status_code, started)
            return response
        except BaseException:
            self.log(request, 500, started)
            raise
        finally:
            _request_id.reset(token)

    @staticmethod
    def log(request, status: int, started: float) -> None:
        agent, operator = _principal(request)
        logger.info(json.dumps({
            "request_id": request.request_id,
            "agent": agent,
            "operator": operator,
            "method": request.method,
            "route": route_of(request),
            "status": status,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }))
