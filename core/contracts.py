"""Input contracts: each operation declares its input once, as a `Contract` (a pydantic model).

The same class is the REST view's body, the MCP tool's argument schema, the OpenAPI request
schema (drf-spectacular documents pydantic models) and what the admin builds from its form. A
service receives the parsed instance, never a raw dict: types, limits and choices are checked
here, and only checks that need the database (membership, existence, cycles) stay in services.

Field types come from `core.fields`, which wraps the cleaners of `core.validation`; a refusal is
an `InvalidInput` naming the field's full path (`memories[3].content`, `task_context.tags`), in the
one error shape, with the same message whatever the surface.
"""
from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import InvalidInput

# Cleaners write this where the field's name goes; `parse` puts the field's full path in its place.
FIELD = "{field}"


class FieldError(ValueError):
    """A field's value is refused; `message` names the field as FIELD."""

    def __init__(self, message: str, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.code = code


class Contract(BaseModel):
    """The validated input of one operation (unknown keys are ignored, as JSON APIs do)."""

    model_config = ConfigDict(extra="ignore", frozen=True, arbitrary_types_allowed=True)
    # For contracts that forbid unknown keys (model_config extra="forbid").
    unknown_field_message: ClassVar[str] = "{field} is not a known field."

    @classmethod
    def parse(cls, data: Any, *, path: str = "") -> Self:
        """`data` (parsed JSON) as this contract, or InvalidInput naming the first field at fault."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise InvalidInput(f"{path or 'The request body'} must be a JSON object.", field=path or None)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise refusal(exc, path, cls.unknown_field_message) from None

    def given(self) -> dict[str, Any]:
        """The fields the caller set (a partial update changes these only)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def field_path(location: tuple, prefix: str = "") -> str:
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


# Messages for what pydantic itself refuses (the field types refuse the rest in their own words).
_MESSAGES = {
    "missing": "{field} is required.",
    "string_type": "{field} must be a string.",
    "bool_type": "{field} must be true or false.",
    "bool_parsing": "{field} must be true or false.",
    "int_type": "{field} must be an integer.",
    "int_parsing": "{field} must be an integer.",
    "int_from_float": "{field} must be an integer.",
    "float_type": "{field} must be a number.",
    "float_parsing": "{field} must be a number.",
    "list_type": "{field} must be a list.",
    "dict_type": "{field} must be a JSON object.",
    "model_type": "{field} must be a JSON object.",
    "model_attributes_type": "{field} must be a JSON object.",
    "uuid_type": "{field} must be a UUID.",
    "uuid_parsing": "{field} must be a UUID.",
}


def refusal(exc: ValidationError, prefix: str = "", unknown_field_message: str = Contract.unknown_field_message
            ) -> InvalidInput:
    """The first error of a pydantic validation as the service's InvalidInput."""
    error = exc.errors(include_url=False)[0]
    path = field_path(error["loc"], prefix)
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        message, code = cause.message, cause.code
    elif error["type"] == "extra_forbidden":
        message, code = unknown_field_message, "invalid"
    elif error["type"] in _MESSAGES:
        message, code = _MESSAGES[error["type"]], "invalid"
    elif error["type"] == "too_long":
        message, code = f"{FIELD} holds at most {error['ctx']['max_length']} items.", "invalid"
    elif error["type"] == "too_short":
        message, code = f"{FIELD} holds at least {error['ctx']['min_length']} items.", "invalid"
    else:
        message, code = f"{FIELD}: {error['msg']}", "invalid"
    name = path or "The request body"
    return InvalidInput(message.replace(FIELD, name), field=path or None, code=code)
