"""Domain errors raised by services; the REST API and the MCP tools turn them into responses."""
from __future__ import annotations


class ServiceError(Exception):
    """A refused operation: a machine `code`, a human message and, when one is to blame, the field."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.field:
            error["fields"] = {self.field: [self.message]}
        return {"error": error}


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
