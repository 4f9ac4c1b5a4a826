"""Bad sources give a message naming the problem and leave the target unchanged."""
from __future__ import annotations

import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.models import Agent
from compat.models import ImportRun
from memories.models import Memory
from namespaces.models import Namespace
from workflows.models import Task

from . import legacy_db


def target_counts() -> dict:
    return {
        "agents": Agent.objects.count(), "memories": Memory.objects.count(), "tasks": Task.objects.count(),
        "namespaces": Namespace.objects.count(), "runs": ImportRun.objects.count(),
    }


def import_fails(url, tmp_path, *extra) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("migrate_personas_to_agents", "--source-url", url, "--keys-file", str(tmp_path / "k.tsv"),
                     "--no-progress", *extra, stdout=StringIO())
    assert not (tmp_path / "k.tsv").exists()
    return str(caught.value)


@pytest.mark.django_db(transaction=True)
def test_unreachable_source(tmp_path):
    # given
    before = target_counts()
    url = "postgresql://legacy:secret-pw@127.0.0.1:1/persona_era"

    # when
    message = import_fails(url, tmp_path)

    # then
    assert message.startswith("Cannot connect to the source database postgresql://legacy:***@127.0.0.1:1/")
    assert "secret-pw" not in message
    assert target_counts() == before


@pytest.mark.django_db(transaction=True)
def test_not_a_postgresql_url(tmp_path):
    message = import_fails("mysql://host/db", tmp_path)
    assert message == "--source-url must be a postgresql:// URL, got 'mysql://host/db'."


@pytest.mark.django_db(transaction=True)
def test_wrong_schema(empty_legacy_database, tmp_path):
    # given: a database with unrelated tables
    _, url = empty_legacy_database
    legacy_db.execute(url, "CREATE TABLE customers (id uuid PRIMARY KEY, name text)")
    before = target_counts()

    # when
    message = import_fails(url, tmp_path)

    # then
    assert "table 'personas' is missing: this does not look like a persona-era database" in message
    assert "table 'workflows' is missing" in message
    assert target_counts() == before


@pytest.mark.django_db(transaction=True)
def test_partial_schema(empty_legacy_database, tmp_path):
    # given: the legacy schema with a column dropped
    _, url = empty_legacy_database
    legacy_db.create_schema(url)
    legacy_db.execute(url, "ALTER TABLE tasks DROP COLUMN assigned_persona_id")
    before = target_counts()

    # when
    message = import_fails(url, tmp_path)

    # then
    assert "table 'tasks' lacks required column(s) assigned_persona_id (partial schema)" in message
    assert target_counts() == before


BAD_ROWS = [
    pytest.param(
        "UPDATE memories SET persona_id = NULL WHERE id = %(memory)s", True,
        "memories.persona_id is null (pass --unowned-agent AGENT_ID to give these memories an owner): 1 row(s)",
        id="null persona id",
    ),
    pytest.param(
        "UPDATE memories SET persona_id = %(ghost)s WHERE id = %(memory)s", False,
        "memories.persona_id names no persona (dangling reference): 1 row(s)", id="dangling persona id",
    ),
    pytest.param(
        "UPDATE tasks SET assigned_persona_id = %(ghost)s WHERE id = %(task)s", False,
        "tasks.assigned_persona_id names no persona (dangling reference): 1 row(s)", id="dangling task assignee",
    ),
    pytest.param(
        "UPDATE memories SET content = '   ' WHERE id = %(memory)s", True, "memories.content is empty: 1 row(s)",
        id="empty content",
    ),
    pytest.param(
        "UPDATE memories SET tags = '[\"\"]' WHERE id = %(memory)s", True,
        "memories.tags is not a list of at most 50 tags of 1-64 characters: 1 row(s)", id="bad tags",
    ),
]


@pytest.mark.parametrize(("sql", "foreign_keys", "expected"), BAD_ROWS)
@pytest.mark.django_db(transaction=True)
def test_bad_rows_are_named_and_nothing_is_written(empty_legacy_database, tmp_path, sql, foreign_keys, expected):
    # given: realistic data with one bad row (dangling references need a schema without foreign keys)
    from memories.embeddings import embed_texts

    _, url = empty_legacy_database
    legacy_db.create_schema(url, foreign_keys=foreign_keys)
    ids = legacy_db.populate(url, embed_texts)
    legacy_db.execute(url, sql, {"memory": ids["memories"][2], "task": ids["tasks"][0], "ghost": uuid.uuid4()})
    before = target_counts()

    # when
    message = import_fails(url, tmp_path)

    # then
    assert "The source has rows that cannot be imported (nothing was written)" in message
    assert expected in message
    bad_id = ids["tasks"][0] if "tasks." in expected else ids["memories"][2]
    assert f"e.g. {bad_id}" in message
    assert target_counts() == before


@pytest.mark.django_db(transaction=True)
def test_wrong_vector_dimension(empty_legacy_database, tmp_path):
    # given: embeddings of another model (8 dimensions here)
    _, url = empty_legacy_database
    legacy_db.create_schema(url, embedding_type="vector(8)")
    legacy_db.execute(url, "INSERT INTO personas (name, type, role, display_name) VALUES ('athena', 'athena', "
                           "'strategist', 'Athena')")
    legacy_db.execute(url, "INSERT INTO memories (content, embedding, persona_id) SELECT 'Keep the API stable.', "
                           "'[1,0,0,0,0,0,0,0]', id FROM personas")
    before = target_counts()

    # when
    message = import_fails(url, tmp_path)

    # then
    assert "memories.embedding is vector(8), not 384 dimensions (pass --reembed to compute new embeddings instead)" \
        in message
    assert target_counts() == before


@pytest.mark.django_db(transaction=True)
def test_wrong_vector_dimension_with_reembed_imports_and_embeds(empty_legacy_database, tmp_path):
    # given
    _, url = empty_legacy_database
    legacy_db.create_schema(url, embedding_type="vector(8)")
    legacy_db.execute(url, "INSERT INTO personas (name, type, role, display_name) VALUES ('athena', 'athena', "
                           "'strategist', 'Athena')")
    legacy_db.execute(url, "INSERT INTO memories (content, embedding, persona_id) SELECT 'Keep the API stable.', "
                           "'[1,0,0,0,0,0,0,0]', id FROM personas")

    # when
    call_command("migrate_personas_to_agents", "--source-url", url, "--keys-file", str(tmp_path / "k.tsv"),
                 "--no-progress", "--reembed", stdout=StringIO())

    # then: eager Celery embedded it with the v2 model
    memory = Memory.objects.get()
    assert memory.embedding_status == "ready"
    assert len(memory.embedding) == 384


@pytest.mark.django_db(transaction=True)
def test_null_persona_ids_import_with_an_owner_named(empty_legacy_database, tmp_path):
    # given
    from memories.embeddings import embed_texts

    _, url = empty_legacy_database
    legacy_db.create_schema(url)
    ids = legacy_db.populate(url, embed_texts)
    legacy_db.execute(url, "UPDATE memories SET persona_id = NULL WHERE id = %s", [ids["memories"][2]])

    # when
    call_command("migrate_personas_to_agents", "--source-url", url, "--keys-file", str(tmp_path / "k.tsv"),
                 "--no-progress", "--unowned-agent", "seshat", stdout=StringIO())

    # then
    assert Memory.objects.get(pk=ids["memories"][2]).agent.agent_id == "seshat"
    out = StringIO()
    call_command("validate_migration", "--source-url", url, stdout=out)
    assert "Migration valid: every check passed." in out.getvalue()
