"""A web process without a broker embeds in a background thread: writes return first, every row ends ready once."""
from __future__ import annotations

import time

import pytest

from memories import background
from memories.models import Memory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def writer(make_namespace, make_agent):
    make_namespace("team")
    return make_agent("bulk-writer", "team")


def wait_until_none_pending(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while Memory.objects.pending_embedding().exists():
        assert time.monotonic() < deadline, "memories still pending"
        time.sleep(0.1)


def test_a_bulk_write_returns_before_its_embeddings_and_the_thread_embeds_each_once(writer, background_embedding):
    # given
    items = [{"content": f"Turn {n}: the team talked about release {n % 7} and the build queue.",
              "namespace": "team"} for n in range(500)]

    # when
    response = writer.client.post("/api/v2/memories/bulk", {"memories": items}, format="json")
    pending_at_once = Memory.objects.pending_embedding().count()
    wait_until_none_pending()

    # then: the request stored them and left the embedding to the thread
    assert response.status_code == 201, response.content
    ids = response.json()["ids"]
    assert len(ids) == 500
    assert pending_at_once > 0
    memories = Memory.objects.filter(pk__in=ids)
    assert set(memories.values_list("embedding_status", flat=True)) == {"ready"}
    assert set(memories.values_list("embedding_attempts", flat=True)) == {1}
    assert all(len(m.embedding) == 384 for m in memories.only("embedding")[:20])


def test_rows_left_pending_are_embedded_when_the_thread_starts(writer):
    # given: rows a stopped process left pending (no task, no wake)
    stranded = [Memory.objects.create(content=f"Stranded note {n}.", agent=writer.agent,
                                      namespace=writer.agent.namespace) for n in range(3)]
    assert Memory.objects.pending_embedding().count() == 3

    # when
    background.start_if_no_broker()
    try:
        wait_until_none_pending()
    finally:
        background.stop()

    # then
    assert [Memory.objects.get(pk=m.pk).embedding_status for m in stranded] == ["ready"] * 3


def test_with_a_broker_the_thread_stays_off(settings):
    # given
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/10"

    # when
    background.start_if_no_broker()

    # then: the workers embed
    assert not background.in_background()


def test_the_thread_loads_the_model_as_the_process_starts(writer):
    # given: a process that has not loaded the model yet, and nothing to embed
    from memories import embeddings

    embeddings.unload()
    # when
    background.start_if_no_broker()
    try:
        deadline = time.monotonic() + 120
        while not embeddings.is_loaded():
            assert time.monotonic() < deadline, "the model was not loaded"
            time.sleep(0.05)
    finally:
        background.stop()
    # then: loaded before any write asked for it
    assert Memory.objects.count() == 0
    assert embeddings.get_encoder().backend == "onnx"
