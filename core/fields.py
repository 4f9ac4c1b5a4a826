"""Field types for contracts (core.contracts), built on the cleaners of core.validation.

Each type checks its JSON type before anything else (a list where a string belongs is a 400 naming
the field, never a TypeError), refuses what PostgreSQL cannot store, and documents its limits in
the JSON schema that the OpenAPI document and the MCP tool listing show.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict

from . import validation
from .contracts import FIELD, FieldError
from .errors import InvalidInput


def cleaned_by(cleaner: Callable[..., Any], *args, **kwargs) -> BeforeValidator:
    """A validator running `cleaner(value, FIELD, *args, **kwargs)`; its refusal names the field's path."""

    def run(value):
        try:
            return cleaner(value, FIELD, *args, **kwargs)
        except InvalidInput as exc:
            raise FieldError(exc.message, exc.code) from None

    return BeforeValidator(run)


def text(max_length: int, *, required: bool = False, strip: bool = True, description: str | None = None):
    """A string of at most `max_length` characters (stripped unless `strip=False`); `required`: not blank."""
    return Annotated[
        Annotated[str, Field(max_length=max_length, min_length=1 if required else None)],
        cleaned_by(validation.text, max_length=max_length, required=required, strip=strip),
        Field(description=description),
    ]


def optional_text(max_length: int, *, description: str | None = None):
    """A string of at most `max_length` characters; a missing, null or blank one is None."""
    return Annotated[
        Annotated[str, Field(max_length=max_length)] | None,
        cleaned_by(validation.optional_text, max_length=max_length),
        Field(description=description),
    ]


def choice(values: Iterable[str], *, description: str | None = None):
    """One of `values` (a TextChoices' values, say)."""
    values = tuple(values)
    return Annotated[Literal[values], cleaned_by(lambda value, field: validation.choice(value, values, field)),
                     Field(description=description)]


def optional_choice(values: Iterable[str], *, description: str | None = None):
    values = tuple(values)

    def clean(value, field):
        return None if value is None else validation.choice(value, values, field)

    return Annotated[Literal[values] | None, cleaned_by(clean), Field(description=description)]


def tags(*, max_tags: int = validation.MAX_TAGS, max_length: int = validation.MAX_TAG_LENGTH,
         description: str | None = None):
    """Distinct, stripped, non-empty strings (order kept); null is an empty list."""
    return Annotated[
        Annotated[list[Annotated[str, Field(min_length=1, max_length=max_length)]], Field(max_length=max_tags)],
        cleaned_by(validation.tags, max_tags=max_tags, max_length=max_length),
        Field(description=description),
    ]


def string_list(*, max_items: int = 50, max_length: int = 128, description: str | None = None):
    """A list of short strings taken as given; a missing, null or empty one is None."""
    return Annotated[
        Annotated[list[Annotated[str, Field(max_length=max_length)]], Field(max_length=max_items)] | None,
        cleaned_by(validation.string_list, max_items=max_items, max_length=max_length),
        Field(description=description),
    ]


def json_object(*, max_depth: int | None = validation.MAX_JSON_DEPTH, description: str | None = None):
    """A JSON object nesting at most `max_depth` levels; null is {}."""
    return Annotated[dict[str, Any], cleaned_by(validation.json_object, max_depth=max_depth),
                     Field(description=description)]


def integer(low: int, high: int, *, description: str | None = None):
    """A JSON integer from `low` to `high` (booleans and floats are refused)."""
    return Annotated[Annotated[int, Field(ge=low, le=high)], cleaned_by(validation.integer, low, high),
                     Field(description=description)]


def optional_integer(low: int, high: int, *, description: str | None = None):
    """A JSON integer from `low` to `high`, or None."""

    def clean(value, field):
        return None if value is None else validation.integer(value, field, low, high)

    return Annotated[Annotated[int, Field(ge=low, le=high)] | None, cleaned_by(clean), Field(description=description)]


def number(low: float, high: float, *, description: str | None = None):
    """A finite JSON number from `low` to `high` (booleans are refused)."""
    return Annotated[Annotated[float, Field(ge=low, le=high)], cleaned_by(validation.number, low, high),
                     Field(description=description)]


def optional_number(low: float, high: float, *, description: str | None = None):
    return Annotated[Annotated[float, Field(ge=low, le=high)] | None, cleaned_by(validation.optional_number, low, high),
                     Field(description=description)]


def optional_uuid(*, description: str | None = None):
    """A UUID given as a string; missing, null or "" is None."""

    def clean(value, field):
        return None if value in (None, "") else validation.uuid_value(value, field)

    return Annotated[uuid.UUID | None, cleaned_by(clean), Field(description=description)]


def optional_datetime(*, description: str | None = None):
    """An ISO 8601 date and time (naive ones are UTC); missing, null or "" is None."""
    return Annotated[dt.datetime | None, cleaned_by(validation.datetime_value), Field(description=description)]


def flag(*, description: str | None = None):
    """A JSON boolean: true or false, nothing that merely looks like one."""
    return Annotated[bool, Strict(), Field(description=description)]


QUERY_TRUE, QUERY_FALSE = ("true", "1"), ("false", "0", "")


def query_flag(*, description: str | None = None):
    """A yes or no in a query string: true/false or 1/0 (a JSON boolean too); absent is false."""

    def clean(value, field):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in QUERY_TRUE + QUERY_FALSE:
            return value.strip().lower() in QUERY_TRUE
        raise InvalidInput(f"{field} must be true or false.", field=field)

    return Annotated[bool, cleaned_by(clean), Field(description=description)]


def value(cleaner: Callable[[Any, str], Any], python_type: Any, *, description: str | None = None, **constraints):
    """A field checked by an app's own cleaner `cleaner(value, field)` (which raises InvalidInput)."""
    return Annotated[python_type, cleaned_by(cleaner), Field(description=description, **constraints)]
