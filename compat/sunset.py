"""The date API v1 is switched off, as announced in every v1 response's `Sunset` header."""
from __future__ import annotations

from datetime import UTC, date, datetime, time

from django.conf import settings
from django.core import checks
from django.utils.http import http_date, parse_http_date

DEFAULT_SUNSET = date(2027, 6, 30)


def sunset_timestamp() -> float:
    """TMWS_V1_SUNSET (a date, YYYY-MM-DD, or an HTTP date; empty: DEFAULT_SUNSET) as a UNIX timestamp."""
    value = (settings.TMWS_V1_SUNSET or "").strip()
    if not value:
        return datetime.combine(DEFAULT_SUNSET, time(0, 0), tzinfo=UTC).timestamp()
    try:
        return datetime.combine(date.fromisoformat(value), time(0, 0), tzinfo=UTC).timestamp()
    except ValueError:
        return parse_http_date(value)


def sunset_header() -> str:
    return http_date(sunset_timestamp())


@checks.register()
def check_sunset_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A TMWS_V1_SUNSET that does not parse is reported at start-up, not as a 500 on every v1 request."""
    try:
        sunset_timestamp()
    except ValueError:
        return [checks.Error(
            f"TMWS_V1_SUNSET={settings.TMWS_V1_SUNSET!r} is neither a date (YYYY-MM-DD) nor an HTTP date.",
            id="compat.E001",
        )]
    return []
