"""Search hits: buffered in the broker's Redis and counted in one statement per flush.

A Celery task per search cost the worker more CPU than the search itself took; the buffer turns
the hits of many searches into one UPDATE. The Celery wrappers that schedule and run the flush are
in memories.tasks.
"""
from __future__ import annotations

from collections import Counter

from django.db import connection
from django.utils import timezone

from core.redis_client import broker_redis

from .models import Memory, MemoryUsage

HIT_BUFFER_KEY = "tmws:memory-hits"
HIT_FLUSH_SCHEDULED_KEY = "tmws:memory-hits:flush-scheduled"
HIT_FLUSH_DELAY_SECONDS = 2
# With no worker running the buffer would grow without end: only the newest hits are kept.
HIT_BUFFER_MAX = 100_000



def buffer_hits(buffer, ids: list[str]) -> bool:
    """Add hits to the buffer; returns whether this call must schedule the flush (none is on its way)."""
    pipeline = buffer.pipeline(transaction=False)
    pipeline.rpush(HIT_BUFFER_KEY, *ids)
    pipeline.ltrim(HIT_BUFFER_KEY, -HIT_BUFFER_MAX, -1)
    # The flag expires on its own, so a flush lost with a crashed worker is scheduled again.
    pipeline.set(HIT_FLUSH_SCHEDULED_KEY, "1", nx=True, ex=HIT_FLUSH_DELAY_SECONDS * 30)
    _, _, scheduled = pipeline.execute()
    return bool(scheduled)


def take_buffered_hits() -> list[str]:
    """Empty the buffer (and its flag) in one transaction; hits arriving after it schedule the next flush."""
    buffer = broker_redis()
    if buffer is None:
        return []
    pipeline = buffer.pipeline(transaction=True)
    pipeline.lrange(HIT_BUFFER_KEY, 0, -1)
    pipeline.delete(HIT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY)
    ids, _ = pipeline.execute()
    return [raw.decode() for raw in ids]


def record_hits(ids: list[str]) -> int:
    """Count search hits (an id listed twice counts twice) in one statement; returns memories updated."""
    counts = Counter(ids)
    if not counts:
        return 0
    with connection.cursor() as cursor:
        # Ids of memories deleted since the search are dropped by the join.
        cursor.execute(
            f"""
            INSERT INTO {MemoryUsage._meta.db_table} AS usage (memory_id, access_count, last_accessed_at)
            SELECT memory.id, hit.count, %s
              FROM unnest(%s::uuid[], %s::integer[]) AS hit (id, count)
              JOIN {Memory._meta.db_table} memory ON memory.id = hit.id
            ON CONFLICT (memory_id) DO UPDATE
               SET access_count = usage.access_count + EXCLUDED.access_count,
                   last_accessed_at = EXCLUDED.last_accessed_at
            """,
            [timezone.now(), list(counts), list(counts.values())],
        )
        return cursor.rowcount
