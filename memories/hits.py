"""Search hits and usage events: buffered in the broker's Redis and written in one statement each per flush.

A Celery task per search cost the worker more CPU than the search itself took; the buffer turns
the hits of many searches into one UPDATE, and their usage events (memories.usage) into one INSERT.
Both ride in the same Redis pipeline as before, so recording events adds no round trip to a search.
The Celery wrappers that schedule and run the flush are in memories.tasks.
"""
from __future__ import annotations

import json
from collections import Counter

from django.db import connection
from django.utils import timezone

from core.redis_client import broker_redis

from .models import Memory, MemoryUsage, UsageEvent

HIT_BUFFER_KEY = "tmws:memory-hits"
EVENT_BUFFER_KEY = "tmws:usage-events"
HIT_FLUSH_SCHEDULED_KEY = "tmws:memory-hits:flush-scheduled"
HIT_FLUSH_DELAY_SECONDS = 2
# With no worker running the buffer would grow without end: only the newest hits are kept.
HIT_BUFFER_MAX = 100_000
EVENT_BUFFER_MAX = 100_000


def buffer_hits(buffer, ids: list[str], events: list[dict] = ()) -> bool:
    """Add hits and usage events to the buffer; returns whether this call must schedule the flush (none is on its way)."""
    pipeline = buffer.pipeline(transaction=False)
    if ids:
        pipeline.rpush(HIT_BUFFER_KEY, *ids)
        pipeline.ltrim(HIT_BUFFER_KEY, -HIT_BUFFER_MAX, -1)
    if events:
        pipeline.rpush(EVENT_BUFFER_KEY, *(json.dumps(event, separators=(",", ":")) for event in events))
        pipeline.ltrim(EVENT_BUFFER_KEY, -EVENT_BUFFER_MAX, -1)
    # The flag expires on its own, so a flush lost with a crashed worker is scheduled again.
    pipeline.set(HIT_FLUSH_SCHEDULED_KEY, "1", nx=True, ex=HIT_FLUSH_DELAY_SECONDS * 30)
    scheduled = pipeline.execute()[-1]
    return bool(scheduled)


def take_buffered() -> tuple[list[str], list[dict]]:
    """Empty the buffers (and the flag) in one transaction; what arrives after it schedules the next flush."""
    buffer = broker_redis()
    if buffer is None:
        return [], []
    pipeline = buffer.pipeline(transaction=True)
    pipeline.lrange(HIT_BUFFER_KEY, 0, -1)
    pipeline.lrange(EVENT_BUFFER_KEY, 0, -1)
    pipeline.delete(HIT_BUFFER_KEY, EVENT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY)
    ids, events, _ = pipeline.execute()
    return [raw.decode() for raw in ids], [json.loads(raw) for raw in events]


def take_buffered_hits() -> list[str]:
    """Empty the buffers and answer the hits only (the events are dropped)."""
    return take_buffered()[0]


# Counts hits: ids of memories deleted since the search are dropped by the join.
HITS_SQL = f"""
INSERT INTO {MemoryUsage._meta.db_table} AS usage (memory_id, access_count, last_accessed_at)
SELECT memory.id, hit.count, %s
  FROM unnest(%s::uuid[], %s::integer[]) AS hit (id, count)
  JOIN {Memory._meta.db_table} memory ON memory.id = hit.id
ON CONFLICT (memory_id) DO UPDATE
   SET access_count = usage.access_count + EXCLUDED.access_count,
       last_accessed_at = EXCLUDED.last_accessed_at
"""
# The events' columns, read from the buffered JSON objects (memories.usage.search_event and follow_up_event).
EVENT_COLUMNS = """
    kind text, agent uuid, at timestamptz, mode text, duration_ms float8, result_count integer,
    memory_ids uuid[], useful boolean, query text
"""
# Writes events: those of an agent erased since they were buffered are dropped.
EVENTS_SQL = f"""
INSERT INTO {UsageEvent._meta.db_table}
       (kind, agent_id, at, mode, duration_ms, result_count, memory_ids, useful, query)
SELECT event.kind, event.agent, event.at, coalesce(event.mode, ''), event.duration_ms,
       least(coalesce(event.result_count, 0), 32767), coalesce(event.memory_ids, '{{}}'),
       event.useful, coalesce(event.query, '')
  FROM jsonb_to_recordset(%s::jsonb) AS event ({EVENT_COLUMNS})
 WHERE event.agent IS NULL OR EXISTS (SELECT 1 FROM agents WHERE agents.id = event.agent)
"""


def _hit_params(ids: list[str]) -> list | None:
    counts = Counter(ids)
    return [timezone.now(), list(counts), list(counts.values())] if counts else None


def record_hits(ids: list[str]) -> int:
    """Count search hits (an id listed twice counts twice) in one statement; returns memories updated."""
    params = _hit_params(ids)
    if params is None:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(HITS_SQL, params)
        return cursor.rowcount


def record_events(events: list[dict]) -> int:
    """Insert usage events in one statement; returns rows written."""
    if not events:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(EVENTS_SQL, [json.dumps(events)])
        return cursor.rowcount


def record_usage(ids: list[str], events: list[dict]) -> int:
    """Write the events and count the hits of one flush in one statement; returns memories whose counters changed."""
    params = _hit_params(ids)
    if params is None:
        record_events(events)
        return 0
    if not events:
        return record_hits(ids)
    with connection.cursor() as cursor:
        # A data-modifying CTE: both tables in one statement (one round trip), whatever the two write.
        cursor.execute(f"WITH written AS ({EVENTS_SQL}) {HITS_SQL}", [json.dumps(events), *params])
        return cursor.rowcount
