"""Fixtures for the compat tests: a persona-era source database on the test server."""
from __future__ import annotations

import uuid

import pytest

from memories.embeddings import embed_texts

from . import legacy_db


@pytest.fixture
def legacy_source(db):
    """A fresh persona-era database with realistic rows; yields (url, ids) and drops it afterwards."""
    name = f"legacy_{uuid.uuid4().hex[:10]}"
    legacy_db.create_database(name)
    url = legacy_db.url_for(name)
    legacy_db.create_schema(url)
    ids = legacy_db.populate(url, embed_texts)
    yield url, ids
    legacy_db.drop_database(name)


@pytest.fixture
def empty_legacy_database(db):
    """A fresh empty database on the test server; yields (name, url) and drops it afterwards."""
    name = f"legacy_{uuid.uuid4().hex[:10]}"
    legacy_db.create_database(name)
    yield name, legacy_db.url_for(name)
    legacy_db.drop_database(name)


@pytest.fixture
def persona_era_source(legacy_source):
    """The legacy database with the gaps of a real one: memories without embeddings and without personas."""
    url, ids = legacy_source
    ids.update(legacy_db.open_persona_era_gaps(url, ids))
    return url, ids
