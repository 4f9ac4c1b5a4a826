"""Hit tracking: counted in bulk off the search path, buffered in Redis, guarded by row-level security."""
from __future__ import annotations

import logging

import pytest
from django.db import DatabaseError, connection, transaction

from core.db import enter_agent_context
from core.redis_client import client_for
from memories.contracts import StoreMemory
from memories.hits import EVENT_BUFFER_KEY, HIT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY
from memories.models import Memory, MemoryUsage, UsageEvent
from memories.services import create_memory
from memories.tasks import flush_memory_hits, queue_hits, record_memory_hits


@pytest.fixture
def notes(team, store):
    owner = team["owner"].agent
    private, shared = store(owner, [
        {"content": "The standup moved to nine thirty.", "access_level": "private"},
        {"content": "Release notes live in the wiki.", "access_level": "shared"},
    ], namespace="team")
    return team, private, shared


@pytest.fixture
def redis_buffer(require_redis, settings):
    """Buffer hits in the test Redis, as a deployment with a Redis broker does."""
    settings.CELERY_BROKER_URL = require_redis
    client = client_for(require_redis)
    client.delete(HIT_BUFFER_KEY, EVENT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY)
    yield client
    client.delete(HIT_BUFFER_KEY, EVENT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY)


def counts(*memories) -> list[int]:
    return [Memory.objects.get(pk=memory.pk).access_count for memory in memories]


@pytest.mark.django_db
def test_record_counts_repeated_ids_and_skips_deleted_memories(notes):
    # given
    _, private, shared = notes
    gone = str(private.pk)
    # when
    first = record_memory_hits([str(private.pk), str(shared.pk), str(shared.pk)])
    Memory.objects.filter(pk=private.pk).delete()
    second = record_memory_hits([gone, str(shared.pk)])
    # then
    assert (first, second) == (2, 1)
    assert MemoryUsage.objects.get(memory=shared).access_count == 3
    assert not MemoryUsage.objects.filter(memory_id=gone).exists()


@pytest.mark.django_db
def test_a_memory_never_found_reports_zero_hits(notes):
    # given
    _, private, _ = notes
    # then
    assert (private.access_count, private.last_accessed_at) == (0, None)


@pytest.mark.django_db
def test_buffered_hits_wait_for_the_scheduled_flush_and_are_counted_once(notes, redis_buffer):
    # given: a flush is already on its way
    _, private, shared = notes
    redis_buffer.set(HIT_FLUSH_SCHEDULED_KEY, "1")
    # when
    queue_hits([str(private.pk), str(shared.pk)])
    queue_hits([str(shared.pk)])
    waiting = redis_buffer.llen(HIT_BUFFER_KEY)
    before = counts(private, shared)
    flushed = flush_memory_hits()
    # then
    assert waiting == 3
    assert before == [0, 0]
    assert flushed == 2
    assert counts(private, shared) == [1, 2]
    assert redis_buffer.exists(HIT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY) == 0
    assert flush_memory_hits() == 0


@pytest.mark.django_db
def test_the_buffer_keeps_only_the_newest_hits_when_nothing_flushes_it(notes, redis_buffer, monkeypatch):
    # given: no flush comes (one is "scheduled"), and room for three ids
    from memories import hits

    _, private, shared = notes
    monkeypatch.setattr(hits, "HIT_BUFFER_MAX", 3)
    redis_buffer.set(HIT_FLUSH_SCHEDULED_KEY, "1")
    # when
    queue_hits([str(private.pk), str(private.pk)])
    queue_hits([str(shared.pk), str(shared.pk)])
    # then
    assert [raw.decode() for raw in redis_buffer.lrange(HIT_BUFFER_KEY, 0, -1)] == [
        str(private.pk), str(shared.pk), str(shared.pk)
    ]


@pytest.mark.django_db
def test_the_first_hit_schedules_a_flush(notes, redis_buffer):
    # given
    _, private, _ = notes
    # when: Celery runs in-process here, so the scheduled flush runs at once
    queue_hits([str(private.pk)])
    # then
    assert counts(private) == [1]
    assert redis_buffer.llen(HIT_BUFFER_KEY) == 0


@pytest.mark.django_db
def test_searches_through_the_api_are_counted_through_the_buffer(notes, redis_buffer, django_capture_on_commit_callbacks):
    # given
    team, _, shared = notes
    # when
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = team["member"].client.post(
                "/api/v2/memories/search", {"query": "where are the release notes", "limit": 1}, format="json"
            )
        assert response.status_code == 200
    # then
    assert counts(shared) == [2]
    detail = team["member"].client.get(f"/api/v2/memories/{shared.pk}").json()
    assert detail["access_count"] == 2
    assert detail["last_accessed_at"] is not None


@pytest.mark.django_db
def test_usage_events_ride_in_the_buffer_and_are_written_in_one_flush(notes, redis_buffer,
                                                                    django_capture_on_commit_callbacks):
    # given: a flush is already on its way, so the searches only buffer
    team, _, shared = notes
    redis_buffer.set(HIT_FLUSH_SCHEDULED_KEY, "1")
    # when
    for query in ("where are the release notes", "nothing matches zzqx"):
        with django_capture_on_commit_callbacks(execute=True):
            response = team["member"].client.post("/api/v2/memories/search", {"query": query, "limit": 1,
                                                                               "mode": "keyword"}, format="json")
        assert response.status_code == 200
    waiting = (redis_buffer.llen(HIT_BUFFER_KEY), redis_buffer.llen(EVENT_BUFFER_KEY), UsageEvent.objects.count())
    flushed = flush_memory_hits()
    # then
    assert waiting == (1, 2, 0)
    assert flushed == 1
    assert sorted(UsageEvent.objects.values_list("kind", "agent_id", "mode", "result_count", "memory_ids")) == sorted([
        ("search", team["member"].agent.pk, "keyword", 1, [shared.pk]),
        ("search", team["member"].agent.pk, "keyword", 0, []),
    ])
    assert redis_buffer.exists(EVENT_BUFFER_KEY) == 0


@pytest.mark.django_db
def test_a_broker_that_is_down_does_not_fail_the_search(notes, settings, caplog, django_capture_on_commit_callbacks):
    # given: nothing listens on port 1
    team, _, shared = notes
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    # when
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        response = team["member"].client.post(
            "/api/v2/memories/search", {"query": "release notes", "limit": 1}, format="json"
        )
    # then
    assert response.status_code == 200
    assert response.json()["results"][0]["memory"]["id"] == str(shared.pk)
    assert "queue_hits" in caplog.text
    assert counts(shared) == [0]


def usage_rows_seen_by(agent) -> set[str]:
    with transaction.atomic():
        enter_agent_context(agent)
        with connection.cursor() as cursor:
            cursor.execute("SELECT memory_id FROM memory_usage")
            seen = {str(row[0]) for row in cursor.fetchall()}
        transaction.set_rollback(True)
    return seen


@pytest.mark.django_db
@pytest.mark.parametrize("reader, sees_private", [("owner", True), ("member", False), ("outsider", False)])
def test_agents_see_the_counters_of_memories_they_may_read_only(notes, reader, sees_private):
    # given
    team, private, shared = notes
    record_memory_hits([str(private.pk), str(shared.pk)])
    # when
    seen = usage_rows_seen_by(team[reader].agent)
    # then
    expected = {str(shared.pk)} if reader != "outsider" else set()
    if sees_private:
        expected.add(str(private.pk))
    assert seen == expected


@pytest.mark.django_db
@pytest.mark.parametrize("statement", [
    "INSERT INTO memory_usage (memory_id, access_count) VALUES (%s, 1000)",
    "UPDATE memory_usage SET access_count = 1000 WHERE memory_id = %s",
])
def test_agents_cannot_write_counters_even_on_their_own_memories(notes, statement):
    # given
    team, private, _ = notes
    other = create_memory(team["owner"].agent, StoreMemory.parse({"content": "A second note.", "namespace": "team"}))
    record_memory_hits([str(private.pk)])
    target = other if statement.startswith("INSERT") else private
    # when
    with transaction.atomic():
        enter_agent_context(team["owner"].agent)
        with connection.cursor() as cursor:
            try:
                cursor.execute(statement, [target.pk])
                changed = cursor.rowcount
            except DatabaseError:
                changed = 0
        transaction.set_rollback(True)
    # then
    assert changed == 0
    assert counts(private, other) == [1, 0]


@pytest.mark.django_db
def test_deleting_a_memory_as_its_owner_deletes_its_counters(notes):
    # given
    team, private, _ = notes
    record_memory_hits([str(private.pk)])
    # when
    response = team["owner"].client.delete(f"/api/v2/memories/{private.pk}")
    # then
    assert response.status_code == 204
    assert not MemoryUsage.objects.filter(memory_id=private.pk).exists()
