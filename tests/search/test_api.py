"""The search endpoints over HTTP (agent requests run under row-level security)."""
from __future__ import annotations

import pytest

from memories.contracts import ShareMemory
from memories.models import Memory

READERS = {
    "private": {"owner"},
    "shared": {"owner", "member", "descendant", "sharee"},
    "public": {"owner", "member", "descendant", "ancestor", "outsider", "sharee", "admin", "ns_admin"},
}
TEXTS = {
    "private": "The launch code word is pelican.",
    "shared": "The team standup is at half past nine.",
    "public": "The style guide asks for short sentences.",
}
QUERIES = {"private": "launch code word", "shared": "team standup time", "public": "style guide sentences"}


@pytest.fixture
def visibility_cast(team, store):
    owner = team["owner"].agent
    memories = {
        level: store(owner, [{"content": TEXTS[level], "access_level": level}], namespace="team")[0]
        for level in TEXTS
    }
    from memories.services import share_memory

    share_memory(owner, memories["shared"], ShareMemory.parse({"agent_ids": ["sharee-agent"]}))
    return team, memories


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
@pytest.mark.parametrize("reader", ["owner", "member", "descendant", "ancestor", "outsider", "sharee", "admin"])
@pytest.mark.parametrize("level", ["private", "shared", "public"])
def test_search_shows_a_memory_exactly_to_its_readers_in_every_mode(visibility_cast, mode, reader, level):
    # given
    team, memories = visibility_cast
    # when
    response = team[reader].client.post(
        "/api/v2/memories/search", {"query": QUERIES[level], "limit": 20, "mode": mode}, format="json"
    )
    # then
    assert response.status_code == 200, response.content
    found = str(memories[level].pk) in [hit["memory"]["id"] for hit in response.json()["results"]]
    assert found == (reader in READERS[level])


@pytest.mark.django_db
@pytest.mark.parametrize("reader", ["owner", "outsider"])
def test_contextual_search_respects_visibility(visibility_cast, reader):
    # given
    team, memories = visibility_cast
    # when
    response = team[reader].client.post(
        "/api/v2/memories/contextual-search",
        {"query": "code word", "conversation_context": [{"role": "user", "content": "about the launch"}],
         "task_context": {"title": "Launch", "tags": ["launch"], "namespace": "team"}},
        format="json",
    )
    # then
    assert response.status_code == 200, response.content
    found = str(memories["private"].pk) in [hit["memory"]["id"] for hit in response.json()["results"]]
    assert found == (reader == "owner")


@pytest.mark.django_db
def test_search_response_carries_scores_mode_and_time(visibility_cast):
    # given
    team, memories = visibility_cast
    # when
    body = team["owner"].client.post(
        "/api/v2/memories/search", {"query": "standup", "limit": 1}, format="json"
    ).json()
    # then
    assert body["mode"] == "hybrid"
    assert body["count"] == 1
    assert body["took_ms"] > 0
    hit = body["results"][0]
    assert hit["memory"]["id"] == str(memories["shared"].pk)
    assert set(hit) == {"memory", "score", "similarity"}
    assert isinstance(hit["score"], float) and isinstance(hit["similarity"], float)


@pytest.mark.django_db
def test_search_hits_are_counted_after_the_request(visibility_cast, django_capture_on_commit_callbacks):
    # given
    team, memories = visibility_cast
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        team["owner"].client.post("/api/v2/memories/search", {"query": "standup", "limit": 1}, format="json")
    # then
    assert len(callbacks) == 1
    memory = Memory.objects.get(pk=memories["shared"].pk)
    assert memory.access_count == 1
    assert memory.last_accessed_at is not None
    assert Memory.objects.get(pk=memories["public"].pk).access_count == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"query": "x", "limit": 500}, "limit"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "conversation_context": "hello"}, "conversation_context"),
        ({"query": "x", "conversation_context": [{"role": "user"}]}, "conversation_context[0]"),
        ({"query": "x", "task_context": ["title"]}, "task_context"),
        ({"query": "x", "task_context": {"colour": "red"}}, "task_context.colour"),
        ({"query": "x", "task_context": {"tags": "ops"}}, "task_context.tags"),
    ],
)
def test_contextual_search_rejects_bad_input_naming_the_field(team, body, field):
    # when
    response = team["owner"].client.post("/api/v2/memories/contextual-search", body, format="json")
    # then
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
