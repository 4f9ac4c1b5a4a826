"""Expiry: from the moment a memory expires no read returns it; the periodic job then deletes it for good."""
from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from memories.contracts import StoreMemory
from memories.embedding_jobs import embed_batch
from memories.expiry import delete_expired_memories
from memories.models import Memory, MemoryVersion
from memories.services import create_memory
from memories.tasks import delete_expired_memories as delete_expired_task
from tmws_site.mcp_server import _call_as_agent

pytestmark = pytest.mark.django_db


def _expire_at_this_statement(memory) -> None:
    """Make the memory expire exactly at the start of this statement (the reads after it run later)."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE memories SET expires_at = statement_timestamp() WHERE id = %s", [memory.pk])


def _reads(client, memory) -> dict:
    return {
        "get": client.get(f"/api/v2/memories/{memory.pk}").status_code,
        "list": [m["id"] for m in client.get("/api/v2/memories").json()["results"]],
        "search": {
            mode: [hit["memory"]["id"] for hit in client.post(
                "/api/v2/memories/search", {"query": "harbour crane inspection", "mode": mode}, format="json",
            ).json()["results"]]
            for mode in ("keyword", "semantic", "hybrid")
        },
        "v1": client.get(f"/api/v1/memory/{memory.pk}").status_code,
    }


@pytest.fixture
def expiring(team):
    owner = team["owner"].agent
    memory = create_memory(owner, StoreMemory.parse({
        "content": "The harbour crane inspection is due on Friday.", "ttl_seconds": 3600}))
    embed_batch([memory.pk])
    return memory


def test_an_unexpired_memory_is_read_as_usual(team, expiring):
    # when
    reads = _reads(team["owner"].client, expiring)
    # then
    assert reads == {"get": 200, "list": [str(expiring.pk)], "v1": 200,
                     "search": {mode: [str(expiring.pk)] for mode in ("keyword", "semantic", "hybrid")}}


def test_from_the_moment_it_expires_no_read_returns_it(team, expiring):
    # when: it expires exactly now
    _expire_at_this_statement(expiring)
    reads = _reads(team["owner"].client, expiring)
    tool = _call_as_agent(_tool("search_memories"), team["owner"].agent.pk, {"query": "harbour crane inspection"})
    # then: gone from every read, though still stored until the job runs
    assert reads == {"get": 404, "list": [], "v1": 404, "search": {"keyword": [], "semantic": [], "hybrid": []}}
    assert tool["count"] == 0
    assert Memory.objects.filter(pk=expiring.pk).exists()


def test_the_job_deletes_expired_memories_with_their_history_and_leaves_the_rest(team, expiring):
    # given: one expired, one expiring later, one without expiry
    owner = team["owner"].agent
    later = create_memory(owner, StoreMemory.parse({"content": "Later.", "ttl_seconds": 3600}))
    forever = create_memory(owner, StoreMemory.parse({"content": "Forever."}))
    _expire_at_this_statement(expiring)
    # when
    deleted = delete_expired_task()
    # then
    assert deleted == 1
    assert set(Memory.objects.values_list("pk", flat=True)) == {later.pk, forever.pk}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM memory_versions WHERE memory_id = %s", [expiring.pk])
        assert cursor.fetchone()[0] == 0
    assert delete_expired_memories() == 0


def test_ttl_and_expires_at_set_the_moment(team):
    # given
    moment = timezone.now() + dt.timedelta(days=2)
    # when
    by_ttl = team["owner"].client.post("/api/v2/memories", {"content": "A.", "ttl_seconds": 60}, format="json")
    by_moment = team["owner"].client.post(
        "/api/v2/memories", {"content": "B.", "expires_at": moment.isoformat()}, format="json")
    # then
    assert by_ttl.status_code == 201 and by_moment.status_code == 201
    ttl_expiry = dt.datetime.fromisoformat(by_ttl.json()["expires_at"])
    assert dt.timedelta(seconds=55) < ttl_expiry - timezone.now() <= dt.timedelta(seconds=60)
    assert dt.datetime.fromisoformat(by_moment.json()["expires_at"]) == moment


def test_an_expiry_is_changed_or_removed_by_an_update(team, expiring):
    # when
    removed = team["owner"].client.patch(f"/api/v2/memories/{expiring.pk}", {"expires_at": None}, format="json")
    # then
    assert removed.status_code == 200 and removed.json()["expires_at"] is None
    assert Memory.objects.get(pk=expiring.pk).expires_at is None
    assert MemoryVersion.objects.filter(memory=expiring).count() == 1  # expiry is not a version of the content


@pytest.mark.parametrize("body, field, message", [
    ({"ttl_seconds": 0}, "ttl_seconds", "ttl_seconds must be an integer from 1 to 315360000."),
    ({"ttl_seconds": "60"}, "ttl_seconds", "ttl_seconds must be an integer from 1 to 315360000."),
    ({"expires_at": "tomorrow"}, "expires_at", "expires_at must be an ISO 8601 date and time."),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at", "expires_at must be in the future."),
    ({"expires_at": "2999-01-01T00:00:00Z", "ttl_seconds": 60}, "ttl_seconds",
     "Give expires_at or ttl_seconds, not both."),
])
def test_a_bad_expiry_is_refused_and_nothing_is_stored(team, body, field, message):
    # given
    before = Memory.objects.count()
    # when
    response = team["owner"].client.post("/api/v2/memories", {"content": "Soon gone.", **body}, format="json")
    # then
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {field: [message]}
    assert Memory.objects.count() == before


def _tool(name):
    from tmws_site.mcp_server import registered_tools

    return next(spec for spec in registered_tools() if spec.name == name)
