"""The database backend (core.postgresql): timestamps read by psycopg's C parser, as Django's loader reads them."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg import ClientCursor
from psycopg.pq import Format

from core.postgresql.base import TIMESTAMPTZ_OID, TimestampLoader

VALUES_SQL = """
SELECT value FROM unnest(ARRAY[
    '2031-05-04 03:02:01.123456+02', '1999-12-31 23:59:59.999999-11:30', '2000-01-01 00:00:00+00',
    '0001-01-01 00:00:00+00', '9999-12-31 23:59:59.999999+00', NULL
]::timestamptz[]) value
"""


@pytest.mark.django_db
def test_timestamps_are_read_by_the_c_loader_with_djangos_time_zone():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    assert issubclass(loader, TimestampLoader) and loader.timezone == UTC
    with connection.cursor() as cursor:
        cursor.execute(VALUES_SQL)
        fast = [row[0] for row in cursor.fetchall()]
    # Django's own loader (pure Python) on a cursor of its own over the same connection.
    with ClientCursor(connection.connection) as plain:
        register_tzloader(UTC, plain)
        plain.execute(VALUES_SQL)
        django_values = [row[0] for row in plain.fetchall()]
    assert fast == django_values
    assert [value.tzinfo for value in fast if value is not None] == [UTC] * 5
    assert fast[0] == datetime(2031, 5, 4, 1, 2, 1, 123456, tzinfo=UTC)
    assert fast[-1] is None
