"""Domain errors raised by services; the REST API and the MCP tools turn them into responses."""
from __future__ import annotations

from .request_context import current_request_id


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    """The one error shape: `{"error": {"code", "message", "fields"?, "request_id"?}}`.

    `request_id` names the request in the operator's logs; it is there whenever a request is being served.
    """
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    request_id = current_request_id()
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


class ServiceError(Exception):
    """A refused operation: a machine `code`, a human message and, when one is to blame, the field."""

    status = 400
    code = "invalid"
    headers: dict[str, str] = {}  # sent with the error response (e.g. Retry-After)

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict:
        return error_body(self.code, self.message, {self.field: [self.message]} if self.field else None)


class InvalidInput(ServiceError):
    status = 400
    code = "invalid"


class NotFound(ServiceError):
    """Missing, or not visible to the caller: the two are never told apart."""

    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    """Visible to the caller, but not theirs to change."""

    status = 403
    code = "permission_denied"


class Conflict(ServiceError):
    status = 409
    code = "conflict"
