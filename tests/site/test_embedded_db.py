"""The embedded PostgreSQL server: shared by every process that names the same data folder."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from django.conf import settings

from tmws_site.embedded_db import embedded_database_url, parse_database_url

pytestmark = pytest.mark.skipif(not settings.EMBEDDED_DATABASE, reason="runs against an external DATABASE_URL")


@pytest.fixture
def scratch_database():
    name = f"tmws_probe_{uuid.uuid4().hex[:8]}"
    yield name
    admin_url = embedded_database_url(settings.DATA_DIR, database="postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_embedded_database_url_creates_the_database_once_and_offers_pgvector(scratch_database):
    # when: asked twice, as two processes would
    first = embedded_database_url(settings.DATA_DIR, database=scratch_database)
    second = embedded_database_url(settings.DATA_DIR, database=scratch_database)
    # then
    assert first == second
    parsed = parse_database_url(first)
    assert parsed["NAME"] == scratch_database
    assert parsed["HOST"].startswith("/")  # a Unix socket: no TCP port to clash with
    with psycopg.connect(first) as conn:
        server_version = conn.execute("SHOW server_version_num").fetchone()[0]
        vector = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    assert int(server_version) >= 180000
    assert vector is not None
    assert tuple(int(part) for part in vector[0].split(".")[:2]) >= (0, 8)


def test_settings_use_the_embedded_server_in_the_data_folder():
    # then
    assert settings.DATABASES["default"]["HOST"].startswith("/")
    assert settings.DATABASES["default"]["ATOMIC_REQUESTS"] is True
