"""The small cleaners every entry point validates input with (REST v2, API v1, MCP tools, bulk, workflows).

Each takes a raw value (already parsed from JSON or a query string) and the name of the field it
came from, and returns the cleaned value or raises InvalidInput naming that field. Types are
checked before anything hashes, compares or converts the value, so a list where a string belongs
is a 400 in the error shape by construction, never a TypeError that answers 500.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Iterable

from .errors import InvalidInput

# PostgreSQL text and jsonb hold neither NUL characters nor unpaired UTF-16 surrogates.
UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "may not contain NUL characters or unpaired surrogates."
MAX_TAGS = 50
MAX_TAG_LENGTH = 64
MAX_JSON_DEPTH = 8
# PostgreSQL's integer and bigint bounds: a value outside them fails in the database.
INT32_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1


def text(value, field: str, *, max_length: int, required: bool = False, default: str = "",
         strip: bool = True) -> str:
    """A string of at most `max_length` characters without NUL; None gives `default` unless required."""
    if value is None:
        if required:
            raise InvalidInput(f"{field} is required.", field=field)
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string.", field=field)
    if strip:
        value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} may not be empty.", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} is {len(value)} characters; the limit is {max_length}.", field=field)
    storable(value, field)
    return value or default


def is_storable(value: str) -> bool:
    return UNSTORABLE_CHARACTERS.search(value) is None


def storable(value: str, field: str | None) -> str:
    """The string itself, unless the database could not store it (NUL, an unpaired surrogate): then a 400."""
    if not is_storable(value):
        raise InvalidInput(f"{field or 'The body'} {UNSTORABLE_MESSAGE}", field=field)
    return value


def optional_text(value, field: str, *, max_length: int) -> str | None:
    """A string of at most `max_length` characters, or None for a missing or empty one."""
    return text(value, field, max_length=max_length) or None


def choice(value, choices: Iterable[str], field: str) -> str:
    """One of `choices` (strings only: a list or object is refused, never looked up)."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"{field} must be one of {', '.join(choices)}.", field=field)
    return value


def tags(value, field: str, *, max_tags: int = MAX_TAGS, max_length: int = MAX_TAG_LENGTH) -> list[str]:
    """A list of distinct, stripped, non-empty strings (order kept); None gives []."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise InvalidInput(f"{field} must be a list of strings.", field=field)
    if len(value) > max_tags:
        raise InvalidInput(f"{field} holds at most {max_tags} tags.", field=field)
    cleaned: list[str] = []
    for tag in value:
        tag = tag.strip()
        if not tag or len(tag) > max_length or not is_storable(tag):
            raise InvalidInput(f"Each tag must be 1-{max_length} characters.", field=field)
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


def string_list(value, field: str, *, max_items: int = 50, max_length: int = 128) -> list[str] | None:
    """A list of short strings taken as given, or None for a missing or empty one."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > max_items or not all(
        isinstance(item, str) and len(item) <= max_length for item in value
    ):
        raise InvalidInput(f"{field} must be a list of at most {max_items} strings.", field=field)
    return value or None


def _depth(value, level: int = 0) -> int:
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()] or [level + 1])
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value] or [level + 1])
    return level


def json_value(value, field: str):
    """Anything JSON holds (objects, lists, strings, finite numbers, booleans, null)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} must be JSON (objects, lists, strings, finite numbers, booleans).",
                           field=field) from exc
    return value


def json_object(value, field: str, *, max_depth: int | None = MAX_JSON_DEPTH) -> dict:
    """A JSON object nesting at most `max_depth` levels (no limit for None); None gives {}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object.", field=field)
    if max_depth is not None and _depth(value) > max_depth:
        raise InvalidInput(f"{field} nests at most {max_depth} levels deep.", field=field)
    return value


def uuid_value(value, field: str, *, message: str | None = None) -> uuid.UUID:
    """A UUID given as a string (or already a UUID)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidInput(message or f"{field} must be a UUID.", field=field) from exc


def integer(value, field: str, low: int, high: int) -> int:
    """A JSON integer from `low` to `high` (booleans and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be an integer from {low} to {high}.", field=field)
    return value


def number(value, field: str, low: float, high: float) -> float:
    """A finite JSON number from `low` to `high` (booleans are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number.", field=field)
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}.", field=field)
    return float(value)


def query_integer(raw, field: str, low: int, high: int, *, default: int) -> int:
    """An integer from a query string (digits, optional sign); a missing parameter gives `default`."""
    if raw is None or raw == "":
        return default
    text_value = str(raw).strip()
    digits = text_value[1:] if text_value[:1] in "+-" else text_value
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise InvalidInput(f"{field} must be an integer from {low} to {high}.", field=field)
    return integer(int(text_value), field, low, high)


def datetime_value(value, field: str) -> dt.datetime | None:
    """An ISO 8601 date and time (naive ones are taken as UTC); None or "" gives None."""
    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    if value in (None, ""):
        return None
    try:
        parsed = value if isinstance(value, dt.datetime) else parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidInput(f"{field} must be an ISO 8601 date and time.", field=field)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


def optional_number(value, field: str, low: float, high: float) -> float | None:
    return None if value is None else number(value, field, low, high)


def slug(value, field: str, validator) -> str:
    """A slug checked by a Django validator (e.g. validate_namespace_slug), as InvalidInput."""
    from django.core.exceptions import ValidationError

    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string.", field=field)
    try:
        validator(value)
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], field=field) from exc
    return value
