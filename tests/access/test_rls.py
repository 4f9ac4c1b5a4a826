"""Row-level security on `memories`: the SQL policy agrees with the access module, row for row.

Each test enters an agent's database context exactly as an API request does
(`core.db.enter_agent_context` inside a transaction) and then queries the table with raw
SQL or an unfiltered ORM query, i.e. without the access module's filter.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from core.db import agent_role, enter_agent_context
from memories.contracts import ShareMemory, StoreMemory
from memories.models import Memory
from memories.services import create_memory, unshare_memory

from .conftest import PRINCIPALS

AGENT_PRINCIPALS = [name for name in PRINCIPALS if name != "operator"]
POLICIES = {
    "memories_agent_select", "memories_agent_insert", "memories_agent_update", "memories_agent_delete",
    "memories_service",
}


@contextmanager
def inside_agent_context(agent):
    """A transaction running as `agent`, rolled back afterwards so nothing it did survives."""
    with transaction.atomic():
        enter_agent_context(agent)
        with connection.cursor() as cursor:
            yield cursor
        transaction.set_rollback(True)


def raw_visible_ids(cursor) -> set[str]:
    cursor.execute("SELECT id FROM memories")
    return {str(row[0]) for row in cursor.fetchall()}


def rls_flags() -> tuple[bool, bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'memories'")
        return cursor.fetchone()


def policy_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT policyname FROM pg_policies WHERE tablename = 'memories'")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db
@pytest.mark.parametrize("principal", AGENT_PRINCIPALS)
def test_raw_select_returns_exactly_what_the_access_module_allows(world, principal):
    # given
    agent = world.cast[principal].agent
    # A shared memory one level up: it flows down to team and squad, not sideways.
    company_note = create_memory(
        world.cast["ancestor"].agent, StoreMemory.parse({"content": "Company-wide holiday list.", "access_level": "shared",
                                       "namespace": "company"}),
    )
    allowed = {str(pk) for pk in Memory.objects.visible_to(agent).values_list("pk", flat=True)}
    expected = world.visible_ids(principal)
    if principal in {"owner", "member", "descendant", "ancestor", "ns_admin"}:
        expected = expected | {str(company_note.pk)}
    # when
    with inside_agent_context(agent) as cursor:
        seen = raw_visible_ids(cursor)
    # then
    assert allowed == expected
    assert seen == expected


@pytest.mark.django_db
def test_policy_follows_an_unshare_at_once(world):
    # given
    sharee = world.cast["sharee"].agent
    unshare_memory(world.cast["owner"].agent, world.memories["shared"], ShareMemory.parse({"agent_ids": ["sharee-agent"]}))
    # when
    with inside_agent_context(sharee) as cursor:
        seen = raw_visible_ids(cursor)
    # then
    assert seen == {world.ids["public"], world.ids["system"]}


@pytest.mark.django_db
def test_row_level_security_is_enabled_and_forced_with_its_policies():
    # when
    flags = rls_flags()
    # then
    assert flags == (True, True)
    assert policy_names() == POLICIES


@pytest.mark.django_db
def test_orm_query_that_forgets_the_filter_still_hides_private_memories(world):
    # given
    outsider = world.cast["outsider"].agent
    private = world.memories["private"]
    # when
    with inside_agent_context(outsider):
        found = Memory.objects.filter(pk=private.pk).exists()
        everything = set(Memory.objects.values_list("content", flat=True))
    # then
    assert found is False
    assert private.content not in everything
    assert everything == {world.memories["public"].content, world.memories["system"].content}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE memories SET content = 'tampered' WHERE id = %s",
        "DELETE FROM memories WHERE id = %s",
    ],
)
def test_writes_to_another_agents_private_memory_affect_no_rows(world, statement):
    # given
    private = world.memories["private"]
    before = world.snapshot("private")
    # when
    with inside_agent_context(world.cast["outsider"].agent) as cursor:
        cursor.execute(statement, [private.pk])
        affected = cursor.rowcount
    # then
    assert affected == 0
    assert world.snapshot("private") == before


@pytest.mark.django_db
def test_agent_cannot_insert_a_memory_owned_by_someone_else(world):
    # given
    owner = world.cast["owner"].agent
    count = Memory.objects.count()
    # when
    with pytest.raises(DatabaseError, match="row-level security"):
        with inside_agent_context(world.cast["outsider"].agent) as cursor:
            cursor.execute(
                "INSERT INTO memories (id, created_at, updated_at, metadata, content, embedding_status,"
                " embedding_error, embedding_attempts, agent_id, namespace_id, access_level, context_tags,"
                " learning_weight, memory_category)"
                " VALUES (gen_random_uuid(), now(), now(), '{}', 'forged', 'pending', '', 0, %s, %s, 'public',"
                " '[]', 1.0, 'general')",
                [owner.pk, owner.namespace_id],
            )
    # then
    assert Memory.objects.count() == count


@pytest.mark.django_db
def test_without_an_agent_context_operators_and_jobs_see_every_row(world):
    # when
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user <> %s", [agent_role()])
        own_role = cursor.fetchone()[0]
        seen = raw_visible_ids(cursor)
    # then
    assert own_role is True
    assert seen == set(world.ids.values())


@pytest.mark.django_db
def test_an_agent_request_leaves_the_connection_as_it_found_it(world):
    # given
    owner = world.cast["owner"]
    # when
    response = owner.client.get("/api/v2/memories")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_setting('app.current_agent_id', true)")
        role, current_agent = cursor.fetchone()
    # then
    assert response.status_code == 200
    assert role != agent_role()
    assert current_agent in (None, "")


@pytest.mark.django_db
def test_a_refused_agent_request_also_leaves_the_connection_as_it_found_it(world):
    # given
    member = world.cast["member"]
    # when
    response = member.client.patch(f"/api/v2/memories/{world.ids['shared']}", {"content": "x"}, format="json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_setting('app.current_agent_id', true)")
        role, current_agent = cursor.fetchone()
    # then
    assert response.status_code == 403
    assert role != agent_role()
    assert current_agent in (None, "")


@pytest.mark.django_db(transaction=True)
def test_the_policy_migration_reverses_and_reapplies():
    # given
    assert rls_flags() == (True, True)
    try:
        # when
        call_command("migrate", "namespaces", "0001", verbosity=0)
        # then
        assert rls_flags() == (False, False)
        assert policy_names() == set()
    finally:
        # Forward again, including the apps whose migrations depend on the policy migration.
        call_command("migrate", verbosity=0)
    assert rls_flags() == (True, True)
    assert policy_names() == POLICIES
    executor = MigrationExecutor(connection)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []


@pytest.mark.django_db
@pytest.mark.parametrize("principal", ["outsider", "ancestor", "admin"])
def test_api_requests_run_under_the_policy_even_if_the_filter_is_dropped(world, monkeypatch, principal):
    # given: the access module's read filter lets everything through, as a buggy read path would
    from django.db.models import Q

    import access

    monkeypatch.setattr(access, "memory_visibility_q", lambda actor: Q())
    client = world.clients[principal]
    # when
    listed = client.get("/api/v2/memories", {"page_size": 100})
    detail = client.get(f"/api/v2/memories/{world.ids['private']}")
    # then: the database still returns only what the agent may read
    assert {item["id"] for item in listed.json()["results"]} == world.visible_ids(principal)
    assert detail.status_code == 404
