"""Small writes are embedded by one drain at a time, with the database's pending rows as its queue."""
from __future__ import annotations

import pytest
from django.db import connections

from core.redis_client import client_for
from memories import embeddings
from memories.contracts import StoreMemories, StoreMemory
from memories.models import Memory
from memories.services import bulk_create_memories, create_memory
from memories.tasks import EMBEDDING_DRAIN_KEY, drain_pending_embeddings, sweep_pending_embeddings


@pytest.fixture
def drain_flag(require_redis, settings):
    """Use the test Redis for the drain flag, as a deployment with a Redis broker does."""
    settings.CELERY_BROKER_URL = require_redis
    client = client_for(require_redis)
    client.delete(EMBEDDING_DRAIN_KEY)
    yield client
    client.delete(EMBEDDING_DRAIN_KEY)


@pytest.fixture
def owner(make_namespace, make_agent):
    make_namespace("team")
    return make_agent("drain-owner", "team").agent


def _statuses(*memories) -> list[str]:
    return [Memory.objects.get(pk=memory.pk).embedding_status for memory in memories]


def _left_over(owner, content: str) -> Memory:
    """A pending row no task was sent for (say, its worker crashed)."""
    return Memory.objects.create(content=content, agent=owner, namespace=owner.namespace)


@pytest.mark.redis
def test_a_create_sends_a_drain_that_embeds_every_pending_memory_and_releases_the_flag(
    owner, drain_flag, django_capture_on_commit_callbacks
):
    # given
    stranded = _left_over(owner, "Left pending by a crashed worker.")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        memory = create_memory(owner, StoreMemory.parse({"content": "The drain embeds this one."}))
    # then
    assert _statuses(memory, stranded) == ["ready", "ready"]
    assert len(Memory.objects.get(pk=memory.pk).embedding) == 384
    assert drain_flag.exists(EMBEDDING_DRAIN_KEY) == 0


@pytest.mark.redis
def test_a_create_while_a_drain_is_on_its_way_sends_nothing(owner, drain_flag, django_capture_on_commit_callbacks):
    # given: another process's drain is scheduled
    drain_flag.set(EMBEDDING_DRAIN_KEY, "1", ex=60)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        memory = create_memory(owner, StoreMemory.parse({"content": "Left for the scheduled drain."}))
    # then: the scheduled drain will take it
    assert _statuses(memory) == ["pending"]
    assert drain_flag.get(EMBEDDING_DRAIN_KEY) == b"1"
    # and that drain, when it runs, embeds it and releases the flag
    assert drain_pending_embeddings.apply().get() == {"embedded": 1, "failed": 0}
    assert _statuses(memory) == ["ready"]
    assert drain_flag.exists(EMBEDDING_DRAIN_KEY) == 0


@pytest.mark.redis
def test_a_write_of_a_whole_batch_gets_tasks_of_its_own(
    owner, drain_flag, settings, django_capture_on_commit_callbacks
):
    # given: a drain is on its way, so a small write would wait for it
    settings.TMWS_EMBEDDING_BATCH_SIZE = 4
    drain_flag.set(EMBEDDING_DRAIN_KEY, "1", ex=60)
    items = [{"content": f"Bulk note {n}."} for n in range(4)]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        small = create_memory(owner, StoreMemory.parse({"content": "Waits for the drain."}))
        batch = bulk_create_memories(owner, StoreMemories.parse({"memories": items}))
    # then
    assert _statuses(small, *batch) == ["pending", "ready", "ready", "ready", "ready"]


@pytest.mark.redis
def test_a_drain_hands_failed_rows_to_the_retrying_task_instead_of_looping(owner, drain_flag, settings):
    # given
    memory = _left_over(owner, "This one will not embed.")
    settings.TMWS_EMBEDDING_MODEL = "/nonexistent/tmws-embedding-model"
    embeddings.unload()
    drain_flag.set(EMBEDDING_DRAIN_KEY, "1", ex=60)
    try:
        # when
        result = drain_pending_embeddings.apply().get()
    finally:
        embeddings.unload()
    # then: one attempt in the drain, one in embed_memories (run at once in tests, where it does not retry)
    assert result == {"embedded": 0, "failed": 1}
    memory.refresh_from_db()
    assert (memory.embedding_status, memory.embedding_attempts) == ("pending", 2)
    assert "/nonexistent/tmws-embedding-model" in memory.embedding_error
    assert drain_flag.exists(EMBEDDING_DRAIN_KEY) == 0


def test_without_a_redis_broker_a_create_sends_its_own_task(owner, settings, django_capture_on_commit_callbacks):
    # given
    settings.CELERY_BROKER_URL = ""
    stranded = _left_over(owner, "Not this write's row.")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        memory = create_memory(owner, StoreMemory.parse({"content": "Embedded by a task for its own id."}))
    # then
    assert _statuses(memory, stranded) == ["ready", "pending"]


@pytest.mark.redis
def test_the_sweep_sends_a_drain_for_memories_left_pending(owner, drain_flag):
    # given
    stranded = _left_over(owner, "Its drain was never sent.")
    # when
    sent = sweep_pending_embeddings.apply().get()
    # then
    assert sent is True
    assert _statuses(stranded) == ["ready"]
    assert drain_flag.exists(EMBEDDING_DRAIN_KEY) == 0


@pytest.mark.redis
def test_the_sweep_sends_nothing_while_a_drain_is_on_its_way_or_nothing_is_pending(owner, drain_flag):
    # given: nothing pending
    # when / then
    assert sweep_pending_embeddings.apply().get() is False
    assert drain_flag.exists(EMBEDDING_DRAIN_KEY) == 0
    # given: a pending row and a drain on its way
    waiting = _left_over(owner, "The scheduled drain takes it.")
    drain_flag.set(EMBEDDING_DRAIN_KEY, "1", ex=60)
    # when / then
    assert sweep_pending_embeddings.apply().get() is False
    assert _statuses(waiting) == ["pending"]


@pytest.mark.redis
def test_a_drain_leaves_rows_another_worker_holds_instead_of_waiting_for_them(transactional_db, owner, drain_flag):
    # given: another worker is embedding the only pending row
    held = _left_over(owner, "Another worker is embedding this one.")
    other = connections.create_connection("default")
    other.set_autocommit(False)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT id FROM memories WHERE id = %s FOR UPDATE", [held.pk])
        drain_flag.set(EMBEDDING_DRAIN_KEY, "1", ex=60)
        # when
        result = drain_pending_embeddings.apply().get()
    finally:
        other.rollback()
        other.close()
    # then: the drain ends at once and leaves the row to the worker that holds it
    assert result == {"embedded": 0, "failed": 0}
    assert _statuses(held) == ["pending"]
    assert drain_flag.exists(EMBEDDING_DRAIN_KEY) == 0
