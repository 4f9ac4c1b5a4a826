"""Fixtures for search tests: store memories and embed them with the real model."""
from __future__ import annotations

import pytest

from memories.contracts import StoreMemories
from memories.embedding_jobs import embed_batch
from memories.models import Memory
from memories.services import bulk_create_memories


@pytest.fixture
def store(db):
    """Store memories as `agent` (or an operator) and embed them right away; returns them in order."""

    def store_many(actor, items: list[dict], **defaults) -> list[Memory]:
        memories = bulk_create_memories(actor, StoreMemories.parse({"memories": [{**defaults, **item} for item in items]}))
        embed_batch([memory.pk for memory in memories])
        return list(Memory.objects.filter(pk__in=[m.pk for m in memories]).order_by("created_at"))

    return store_many


def ids(result) -> list[str]:
    return [str(hit.memory.pk) for hit in result.hits]
