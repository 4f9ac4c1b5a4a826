"""Consolidation: a group of memories becomes one; the originals are retired, restorable, and erased with it."""
from __future__ import annotations

import pytest
from django.db import connection
from mcp.server.mcpserver.exceptions import ToolError

from audit.models import AuditEntry
from memories.consolidation import merge_memories
from memories.contracts import MergeMemories, ShareMemory, StoreMemory
from memories.embedding_jobs import embed_batch
from memories.models import Memory, MemoryVersion
from memories.services import create_memory, share_memory
from tmws_site.mcp_server import _call_as_agent, registered_tools

pytestmark = pytest.mark.django_db


def _store(agent, content, **fields):
    return create_memory(agent, StoreMemory.parse({"content": content, **fields}))


@pytest.fixture
def pair(team):
    """The owner's private note and its shared near duplicate, shared with the sharee."""
    owner = team["owner"].agent
    private = _store(owner, "The launch is in June.", context_tags=["launch"], learning_weight=2.0)
    shared = _store(owner, "Launch: June.", access_level="shared", namespace="team", context_tags=["launch", "plan"],
                    memory_category="planning")
    share_memory(owner, shared, ShareMemory.parse({"agent_ids": [team["sharee"].agent_id]}))
    return private, shared


def _merge(client, ids, **body):
    return client.post("/api/v2/memories/merge", {"memory_ids": [str(i) for i in ids], **body}, format="json")


def _state():
    """Every memory and version row, to show that a refused merge changed nothing."""
    return (sorted(Memory.objects.values_list("pk", "content", "retired_into_id", "access_level")),
            sorted(MemoryVersion.objects.values_list("memory_id", "version", "change")))


def test_the_owner_merges_a_group_into_one_memory(team, pair):
    # given
    private, shared = pair
    # when
    response = _merge(team["owner"].client, [private.pk, shared.pk])
    # then
    assert response.status_code == 201, response.content
    merged = response.json()
    assert merged["content"] == "The launch is in June.\n\nLaunch: June."
    assert (merged["access_level"], merged["namespace"], merged["agent_id"]) == ("shared", "team", "owner-agent")
    assert merged["context_tags"] == ["launch", "plan"]
    assert (merged["memory_category"], merged["learning_weight"]) == ("planning", 2.0)
    assert merged["metadata"]["merge"]["from"] == [str(private.pk), str(shared.pk)]
    assert set(Memory.objects.filter(pk__in=[private.pk, shared.pk]).values_list("retired_into_id", flat=True)) == {
        Memory.objects.get(pk=merged["id"]).pk}
    assert MemoryVersion.objects.get(memory_id=merged["id"]).change == "merge"
    assert list(AuditEntry.objects.filter(action="memory.merge").values_list("actor", "object_id", "before", "after")) == [
        ("owner-agent", merged["id"], {"memory_ids": [str(private.pk), str(shared.pk)],
                                       "access_levels": ["private", "shared"]},
         {"memory_id": merged["id"], "access_level": "shared", "owner": "owner-agent", "tags_count": 2})]


def test_retired_originals_are_never_returned_but_their_history_stays(team, pair):
    # given
    private, shared = pair
    merged_id = _merge(team["owner"].client, [private.pk, shared.pk]).json()["id"]
    client = team["owner"].client
    # when
    got = client.get(f"/api/v2/memories/{private.pk}")
    listed = [m["id"] for m in client.get("/api/v2/memories").json()["results"]]
    found = [r["memory"]["id"] for r in client.post("/api/v2/memories/search", {"query": "launch June", "mode": "keyword"},
                                          format="json").json()["results"]]
    history = client.get(f"/api/v2/memories/{private.pk}/history").json()["results"]
    # then
    assert got.status_code == 404
    assert listed == [merged_id]
    assert found == [merged_id]
    assert [(v["version"], v["change"]) for v in history] == [(2, "merge"), (1, "create")]


def test_the_sharees_of_an_original_read_the_merged_memory(team, pair):
    merged_id = _merge(team["owner"].client, [m.pk for m in pair]).json()["id"]
    assert team["sharee"].client.get(f"/api/v2/memories/{merged_id}").status_code == 200
    assert team["outsider"].client.get(f"/api/v2/memories/{merged_id}").status_code == 404


def test_restoring_an_original_makes_it_current_again(team, pair):
    # given
    private, shared = pair
    merged_id = _merge(team["owner"].client, [private.pk, shared.pk]).json()["id"]
    # when
    response = team["owner"].client.post(f"/api/v2/memories/{private.pk}/restore", {"version": 1}, format="json")
    # then
    assert response.status_code == 200, response.content
    assert team["owner"].client.get(f"/api/v2/memories/{private.pk}").json()["content"] == "The launch is in June."
    assert Memory.objects.get(pk=private.pk).retired_into_id is None
    assert Memory.objects.get(pk=shared.pk).retired_into_id is not None
    assert Memory.objects.filter(pk=merged_id).exists()
    assert MemoryVersion.objects.filter(memory=private).order_by("-version").first().change == "restore"


def test_a_member_who_may_not_change_every_memory_may_not_merge_and_nothing_changes(team, pair):
    # given: the member reads the shared memory but changes neither
    member_note = _store(team["member"].agent, "Launch in June, I heard.")
    before = _state()
    # when
    response = _merge(team["member"].client, [member_note.pk, pair[1].pk])
    # then
    assert response.status_code == 403
    assert list(response.json()["error"]["fields"]) == ["memory_ids"]
    assert _state() == before


def test_a_memory_the_caller_cannot_see_is_404_naming_its_place_and_nothing_changes(team, pair):
    # given
    own = _store(team["outsider"].agent, "My own note.")
    before = _state()
    # when
    response = _merge(team["outsider"].client, [own.pk, pair[0].pk])
    # then
    assert response.status_code == 404
    assert list(response.json()["error"]["fields"]) == ["memory_ids[1]"]
    assert "June" not in response.content.decode()
    assert _state() == before


def test_a_namespace_admin_merges_shared_memories_into_one_of_its_own(team):
    # given: two shared memories of the owner in `team`, which ns-admin-agent administers
    owner = team["owner"].agent
    first = _store(owner, "Standup at 9.", access_level="shared", namespace="team")
    second = _store(owner, "Standup is at nine.", access_level="shared", namespace="team")
    # when
    response = _merge(team["ns_admin"].client, [first.pk, second.pk], content="Standup at 9:00.")
    # then
    assert response.status_code == 201, response.content
    assert (response.json()["agent_id"], response.json()["access_level"]) == ("ns-admin-agent", "shared")
    assert response.json()["content"] == "Standup at 9:00."


def test_a_namespace_admin_may_not_merge_a_private_memory(team):
    owner = team["owner"].agent
    shared = _store(owner, "Standup at 9.", access_level="shared", namespace="team")
    private = _store(owner, "Standup at 9 (my note).")
    before = _state()
    response = _merge(team["ns_admin"].client, [shared.pk, private.pk])
    assert response.status_code == 404  # the private memory is not even visible to it
    assert _state() == before


def test_the_merged_memory_gets_the_widest_access_of_the_group(team):
    owner = team["owner"].agent
    private = _store(owner, "Office opens at 8.")
    public = _store(owner, "The office opens at 8.", access_level="public")
    response = _merge(team["owner"].client, [private.pk, public.pk])
    assert response.json()["access_level"] == "public"


@pytest.mark.parametrize(("body", "field"), [
    ({"memory_ids": ["00000000-0000-0000-0000-000000000001"]}, "memory_ids"),
    ({"memory_ids": ["not-a-uuid", "00000000-0000-0000-0000-000000000001"]}, "memory_ids[0]"),
    ({"memory_ids": ["00000000-0000-0000-0000-000000000001"] * 2}, "memory_ids[1]"),
    ({"memory_ids": []}, "memory_ids"),
    ({}, "memory_ids"),
])
def test_bad_input_is_a_400_naming_the_field(team, body, field):
    before = _state()
    response = team["owner"].client.post("/api/v2/memories/merge", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    assert _state() == before


def test_deleting_the_merged_memory_erases_the_originals_and_their_history(team, pair):
    # given
    ids = [str(memory.pk) for memory in pair]
    merged_id = _merge(team["owner"].client, ids).json()["id"]
    # when
    assert team["owner"].client.delete(f"/api/v2/memories/{merged_id}").status_code == 204
    # then: raw SQL, no ORM filter
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM memories WHERE id = ANY(%s::uuid[])", [[*ids, merged_id]])
        memories = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM memory_versions WHERE memory_id = ANY(%s::uuid[])", [[*ids, merged_id]])
        versions = cursor.fetchone()[0]
    assert (memories, versions) == (0, 0)


def test_the_same_text_keeps_its_embedding(team):
    owner = team["owner"].agent
    first = _store(owner, "Deploys need approval.")
    second = _store(owner, "Deploys need the lead's approval.")
    embed_batch([first.pk, second.pk])
    merged = merge_memories(owner, MergeMemories.parse({"memory_ids": [str(first.pk), str(second.pk)],
                                                        "content": "Deploys need approval."}))
    stored = Memory.objects.get(pk=merged.pk)
    assert stored.embedding_status == "ready"
    assert list(stored.embedding) == list(Memory.objects.get(pk=first.pk).embedding)


def test_the_mcp_tool_merges_as_the_calling_agent(team, pair):
    tool = next(spec for spec in registered_tools() if spec.name == "merge_memories")
    merged = _call_as_agent(tool, team["owner"].agent.pk, {"memory_ids": [str(m.pk) for m in pair]})
    assert merged["agent_id"] == "owner-agent"
    assert Memory.objects.get(pk=merged["id"]).retired_into_id is None


def test_the_mcp_tool_refuses_a_group_the_agent_may_not_change(team, pair):
    tool = next(spec for spec in registered_tools() if spec.name == "merge_memories")
    before = _state()
    with pytest.raises(ToolError, match="memory_ids\\[0\\] names no memory you can see"):
        _call_as_agent(tool, team["outsider"].agent.pk, {"memory_ids": [str(m.pk) for m in reversed(pair)]})
    assert _state() == before
