"""Django's PostgreSQL backend, reading timestamps with psycopg's C parser.

Django registers a timestamp loader of its own, to give every value the connection's time zone,
built on psycopg's pure-Python parser: on list and search answers (three timestamps a memory) that
parsing took about a twentieth of a request's CPU. This loader parses with the C loader psycopg
registers by default and then sets the same time zone, so the values are the same.
"""
from __future__ import annotations

from functools import lru_cache

import psycopg
from django.db.backends.postgresql import base
from psycopg import adapt
from psycopg.pq import Format

TIMESTAMPTZ_OID = psycopg.postgres.types["timestamptz"].oid


class TimestampLoader(adapt.Loader):
    """psycopg's default (C) timestamptz loader, then Django's time zone, as Django's own loader gives it."""

    timezone = None  # Django's create_cursor() compares it with the connection's

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        self._parse = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)(oid, context).load

    def load(self, data):
        return self._parse(data).replace(tzinfo=self.timezone)


@lru_cache
def _adapters(template, timezone):
    adapters = adapt.AdaptersMap(template)
    adapters.register_loader("timestamptz", type("ZonedTimestampLoader", (TimestampLoader,), {"timezone": timezone}))
    return adapters


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if "context" in params:
            params["context"] = _adapters(params["context"], self.timezone)
        return params
