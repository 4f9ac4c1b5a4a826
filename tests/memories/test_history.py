"""Memory history: every state is a version; readers see the versions they could have read; erasure erases."""
from __future__ import annotations

import pytest
from django.db import connection, transaction

from core.db import agent_context
from memories.contracts import StoreMemory, UpdateMemory
from memories.models import Memory, MemoryVersion
from memories.services import create_memory, update_memory
from tmws_site.mcp_server import _call_as_agent

pytestmark = pytest.mark.django_db


def _history(client, memory) -> list[tuple]:
    response = client.get(f"/api/v2/memories/{memory.pk}/history")
    assert response.status_code == 200, response.content
    return [(v["version"], v["change"], v["access_level"], v["content"], v["changed_by"])
            for v in response.json()["results"]]


@pytest.fixture
def reclassified(team):
    """A memory that was private twice, then shared in `team` (three versions)."""
    owner = team["owner"].agent
    memory = create_memory(owner, StoreMemory.parse({"content": "Draft: the launch slips to May."}))
    memory = update_memory(owner, memory, UpdateMemory.parse({"content": "Draft: the launch slips to June."}))
    return update_memory(owner, memory, UpdateMemory.parse({
        "content": "The launch is in June.", "access_level": "shared"}))


def test_the_owner_sees_every_version_newest_first(team, reclassified):
    assert _history(team["owner"].client, reclassified) == [
        (3, "update", "shared", "The launch is in June.", "owner-agent"),
        (2, "update", "private", "Draft: the launch slips to June.", "owner-agent"),
        (1, "create", "private", "Draft: the launch slips to May.", "owner-agent"),
    ]


def test_a_member_sees_only_the_versions_it_could_read_when_they_were_current(team, reclassified):
    assert _history(team["member"].client, reclassified) == [
        (3, "update", "shared", "The launch is in June.", "owner-agent"),
    ]


def test_an_outsider_gets_404_and_learns_nothing(team, reclassified):
    # when
    response = team["outsider"].client.get(f"/api/v2/memories/{reclassified.pk}/history")
    # then
    assert response.status_code == 404
    assert "June" not in response.content.decode() and "May" not in response.content.decode()


def test_the_database_shows_an_agent_only_the_versions_the_read_rule_allows(team, reclassified):
    # when: a raw query as the member, under row-level security, no ORM filter
    with agent_context(team["member"].agent), connection.cursor() as cursor:
        cursor.execute("SELECT version FROM memory_versions WHERE memory_id = %s ORDER BY version", [reclassified.pk])
        seen = [row[0] for row in cursor.fetchall()]
    # then
    assert seen == [3]


def test_restore_makes_an_old_version_current_as_a_new_version(team, reclassified):
    # when
    response = team["owner"].client.post(f"/api/v2/memories/{reclassified.pk}/restore", {"version": 1}, format="json")
    # then
    assert response.status_code == 200, response.content
    assert (response.json()["content"], response.json()["access_level"]) == ("Draft: the launch slips to May.", "private")
    assert _history(team["owner"].client, reclassified)[0] == (
        4, "restore", "private", "Draft: the launch slips to May.", "owner-agent")
    assert Memory.objects.get(pk=reclassified.pk).embedding_status == "pending"


def test_a_reader_may_not_restore_and_nothing_changes(team, reclassified):
    # given
    before = list(MemoryVersion.objects.filter(memory=reclassified).values_list("version", "content"))
    # when
    response = team["member"].client.post(f"/api/v2/memories/{reclassified.pk}/restore", {"version": 3}, format="json")
    # then
    assert response.status_code == 403
    assert list(MemoryVersion.objects.filter(memory=reclassified).values_list("version", "content")) == before
    assert Memory.objects.get(pk=reclassified.pk).content == "The launch is in June."


@pytest.mark.parametrize("body, status, field", [
    ({"version": 9}, 404, "version"),
    ({"version": 0}, 400, "version"),
    ({"version": "1"}, 400, "version"),
    ({}, 400, "version"),
])
def test_restoring_a_version_that_is_not_there_or_not_a_number_is_refused(team, reclassified, body, status, field):
    # when
    response = team["owner"].client.post(f"/api/v2/memories/{reclassified.pk}/restore", body, format="json")
    # then
    assert response.status_code == status
    assert list(response.json()["error"]["fields"]) == [field]
    assert MemoryVersion.objects.filter(memory=reclassified).count() == 3


def test_a_member_cannot_restore_a_private_past_it_never_saw(team, reclassified, make_namespace):
    # given: the member administers `team`, so it may change the shared memory
    from namespaces.models import Namespace
    from namespaces.services import set_role

    set_role(team["member"].agent, Namespace.objects.get(namespace="team"), "admin")
    # when
    refused = team["member"].client.post(f"/api/v2/memories/{reclassified.pk}/restore", {"version": 1}, format="json")
    # then: version 1 was private: for the member it does not exist
    assert refused.status_code == 404
    assert Memory.objects.get(pk=reclassified.pk).content == "The launch is in June."


def test_changes_made_in_bulk_or_by_the_system_are_versions_too(team, reclassified, operator_client):
    # when: a queryset update (no service, no actor) and an operator's change
    Memory.objects.filter(pk=reclassified.pk).update(learning_weight=3.5)
    changed = operator_client.patch(f"/api/v2/memories/{reclassified.pk}", {"memory_category": "plan"}, format="json")
    # then
    assert changed.status_code == 200, changed.content
    versions = list(MemoryVersion.objects.filter(memory=reclassified).order_by("-version")[:2].values_list(
        "version", "learning_weight", "memory_category", "changed_by_agent__agent_id", "changed_by_user__username"))
    assert versions == [(5, 3.5, "plan", None, "operator"), (4, 3.5, "general", None, None)]


def test_an_unchanged_save_adds_no_version(team, reclassified):
    # when: a write of the embedding only (not a tracked column)
    Memory.objects.filter(pk=reclassified.pk).update(embedding_status="failed", embedding_error="x")
    # then
    assert MemoryVersion.objects.filter(memory=reclassified).count() == 3


def test_deleting_a_memory_erases_its_history(team, reclassified):
    # when
    response = team["owner"].client.delete(f"/api/v2/memories/{reclassified.pk}")
    # then: checked below the ORM and below row-level security
    assert response.status_code == 204
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM memory_versions WHERE memory_id = %s", [reclassified.pk])
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM memory_versions WHERE content LIKE %s", ["%launch%"])
        assert cursor.fetchone()[0] == 0


def test_the_mcp_tools_list_and_restore_versions(team, reclassified):
    # when
    listed = _call_as_agent(_tool("memory_history"), team["member"].agent.pk, {"memory_id": str(reclassified.pk)})
    restored = _call_as_agent(_tool("restore_memory"), team["owner"].agent.pk,
                              {"memory_id": str(reclassified.pk), "version": 2})
    # then
    assert [v["version"] for v in listed["versions"]] == [3]
    assert restored["content"] == "Draft: the launch slips to June."
    assert MemoryVersion.objects.filter(memory=reclassified).order_by("-version").first().change == "restore"


def _tool(name):
    from tmws_site.mcp_server import registered_tools

    return next(spec for spec in registered_tools() if spec.name == name)


def test_agents_learn_that_an_operator_changed_a_memory_but_not_which_one(team, reclassified):
    # given: a named operator changes the shared memory
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    operator = APIClient()
    operator.force_authenticate(get_user_model().objects.create_superuser("ops-alice", "a@example.com", "pw-123456!x"))
    assert operator.patch(f"/api/v2/memories/{reclassified.pk}", {"memory_category": "plan"},
                          format="json").status_code == 200
    # when
    as_owner = team["owner"].client.get(f"/api/v2/memories/{reclassified.pk}/history").json()["results"][0]
    as_operator = operator.get(f"/api/v2/memories/{reclassified.pk}/history").json()["results"][0]
    as_tool = _call_as_agent(_tool("memory_history"), team["member"].agent.pk, {"memory_id": str(reclassified.pk)})
    # then
    assert (as_owner["version"], as_owner["changed_by"]) == (4, "operator")
    assert (as_operator["version"], as_operator["changed_by"]) == (4, "operator:ops-alice")
    assert as_tool["versions"][0]["changed_by"] == "operator"
    assert "ops-alice" not in str(as_owner) and "ops-alice" not in str(as_tool)
