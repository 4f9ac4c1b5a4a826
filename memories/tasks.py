"""Background jobs on memories: embedding and access tracking. Ids in, bulk work, idempotent."""
from __future__ import annotations

import logging
import time
from collections import Counter
from functools import lru_cache

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .choices import EmbeddingStatus
from .models import Memory, MemoryUsage

logger = logging.getLogger(__name__)
MAX_EMBEDDING_ATTEMPTS = 3


def embed_batch(ids) -> tuple[int, int]:
    """Embed the still-pending memories among `ids`; return (embedded, failed)."""
    embedded, failed = _embed_pending(Memory.objects.filter(pk__in=ids))
    return len(embedded), len(failed)


def _embed_pending(queryset, limit: int | None = None) -> tuple[list, list]:
    """Embed up to `limit` pending memories of `queryset` in one transaction; return (embedded ids, failed ids).

    The configured model embeds them, and each row records its name with the vector.
    """
    from .embeddings import embed_documents

    with transaction.atomic():
        # skip_locked lets several workers share a backlog without embedding a row twice.
        memories = list(
            queryset.pending_embedding().select_for_update(skip_locked=True)
            .only("id", "content", "embedding_attempts")[:limit]
        )
        if not memories:
            return [], []
        now = timezone.now()
        try:
            model_name, vectors = embed_documents([m.content for m in memories])
        except Exception as exc:  # the model failed on the batch: record it on every row
            logger.exception("embedding failed for %d memories", len(memories))
            for memory in memories:
                memory.embedding_attempts += 1
                memory.embedding_error = f"{type(exc).__name__}: {exc}"[:2000]
                if memory.embedding_attempts >= MAX_EMBEDDING_ATTEMPTS:
                    memory.embedding_status = EmbeddingStatus.FAILED
                memory.updated_at = now
            Memory.objects.bulk_update(
                memories, ["embedding_attempts", "embedding_error", "embedding_status", "updated_at"]
            )
            return [], [memory.pk for memory in memories]
        with connection.cursor() as cursor:
            # One UPDATE joined to the batch (bulk_update's per-row CASE expressions cost more than the write).
            cursor.execute(
                f"""
                UPDATE {Memory._meta.db_table} AS memory
                   SET embedding = batch.embedding::vector, embedding_model = %s, embedding_status = %s,
                       embedding_error = '', embedding_attempts = memory.embedding_attempts + 1
                  FROM unnest(%s::uuid[], %s::text[]) AS batch (id, embedding)
                 WHERE memory.id = batch.id
                """,
                [
                    model_name,
                    EmbeddingStatus.READY,
                    [memory.pk for memory in memories],
                    ["[" + ",".join(map(repr, vector.tolist())) + "]" for vector in vectors],
                ],
            )
        return [memory.pk for memory in memories], []


@shared_task(bind=True, max_retries=MAX_EMBEDDING_ATTEMPTS, default_retry_delay=10)
def embed_memories(self, ids: list[str]) -> dict:
    """Embed the given memories a claim at a time; rows that failed stay pending for a retry until attempts run out."""
    batch_size = settings.TMWS_EMBEDDING_CLAIM_SIZE
    embedded = failed = 0
    for start in range(0, len(ids), batch_size):
        done, bad = embed_batch(ids[start : start + batch_size])
        embedded += done
        failed += bad
    if failed:
        still_pending = list(
            Memory.objects.filter(pk__in=ids, embedding_status=EmbeddingStatus.PENDING).values_list("pk", flat=True)
        )
        if still_pending and not self.request.is_eager:
            raise self.retry(args=[[str(pk) for pk in still_pending]])
    return {"embedded": embedded, "failed": failed}


# Ids per embedding task: a large bulk write becomes several tasks, so every worker process takes a share.
EMBEDDING_TASK_SIZE = 200


def enqueue_embedding(ids) -> None:
    """Queue embedding once the surrounding transaction commits (never for rows that were rolled back).

    A web process without a broker wakes its embedder thread instead (memories.background); other
    processes without a broker embed on commit, in the committing thread.

    With a Redis broker, writes smaller than one model batch only make sure a drain is on its way
    (one Redis command): single creates arriving together are embedded together, at about half
    the CPU of a task each, which leaves the cores to the requests.
    """
    ids = [str(pk) for pk in ids]
    if not ids:
        return
    from . import background

    if background.in_background():  # a web process without a broker: its embedder thread drains
        transaction.on_commit(background.wake, robust=True)
        return
    if len(ids) < settings.TMWS_EMBEDDING_BATCH_SIZE and redis_buffer() is not None:
        # robust: the rows are stored either way; a drain that could not be scheduled is made up
        # by the next one, which takes every pending row.
        transaction.on_commit(schedule_embedding_drain, robust=True)
        return
    chunks = [ids[start : start + EMBEDDING_TASK_SIZE] for start in range(0, len(ids), EMBEDDING_TASK_SIZE)]
    for chunk in chunks:
        # robust for the same reason: with the broker down the write still answers, and the
        # beat's sweep embeds the rows once it is back.
        transaction.on_commit(lambda chunk=chunk: embed_memories.delay(chunk), robust=True)


# The database is the queue of the drain: pending rows. A Redis flag keeps one drain scheduled at
# a time; the running drain renews it after every batch, and it expires on its own
# (settings.TMWS_EMBEDDING_DRAIN_TTL_SECONDS after the drain's last sign of life), so a drain lost
# with a crashed worker or a restarted Redis is scheduled again by the next write or sweep.
EMBEDDING_DRAIN_KEY = "tmws:embedding-drain"
# A drain hands its worker back after this long and schedules its successor.
EMBEDDING_DRAIN_MAX_SECONDS = 30


def _drain_ttl() -> int:
    return max(1, settings.TMWS_EMBEDDING_DRAIN_TTL_SECONDS)


def schedule_embedding_drain() -> bool:
    """Send a drain unless one is already on its way; returns whether this call sent it."""
    buffer = redis_buffer()
    if buffer is not None and not buffer.set(EMBEDDING_DRAIN_KEY, "1", nx=True, ex=_drain_ttl()):
        return False
    try:
        drain_pending_embeddings.delay()
    except Exception:
        if buffer is not None:
            buffer.delete(EMBEDDING_DRAIN_KEY)  # so the next write tries again
        raise
    return True


@shared_task
def sweep_pending_embeddings() -> bool:
    """Send a drain when memories wait for an embedding and none is on its way (the beat runs this).

    It picks up rows whose drain was never sent (Redis down at commit) when no write follows them.
    """
    return Memory.objects.pending_embedding().exists() and schedule_embedding_drain()


@shared_task
def drain_pending_embeddings() -> dict:
    """Embed pending memories batch by batch until none is left, then release the drain flag.

    Rows whose batch failed are not taken again here: they go to `embed_memories`, which retries
    them with a delay until their attempts run out.
    """
    buffer = redis_buffer()
    batch_size = settings.TMWS_EMBEDDING_CLAIM_SIZE
    started = time.monotonic()
    embedded, failed = 0, []
    while True:
        done, bad = _embed_pending(Memory.objects.exclude(pk__in=failed), limit=batch_size)
        embedded += len(done)
        failed += bad
        if done or bad:
            if buffer is not None:
                buffer.expire(EMBEDDING_DRAIN_KEY, _drain_ttl())  # still alive; at the end, held for the successor
            if time.monotonic() - started > EMBEDDING_DRAIN_MAX_SECONDS:
                drain_pending_embeddings.delay()
                break
            continue
        if buffer is None:
            break
        buffer.delete(EMBEDDING_DRAIN_KEY)
        # A write that committed after the last look found the flag still set and scheduled nothing.
        if not _waiting(failed) or not buffer.set(EMBEDDING_DRAIN_KEY, "1", nx=True, ex=_drain_ttl()):
            break
    if failed:
        embed_memories.apply_async(args=[[str(pk) for pk in failed]], countdown=embed_memories.default_retry_delay)
    return {"embedded": embedded, "failed": len(failed)}


def _waiting(excluded) -> bool:
    """Whether a pending row waits for a drain: rows another worker holds are being embedded already."""
    with transaction.atomic():
        return Memory.objects.pending_embedding().exclude(pk__in=excluded).select_for_update(skip_locked=True).exists()


# Agents opt in to having their memories filed for them by setting this key of their configuration.
AUTO_CATEGORISE_KEY = "auto_categorise"


@shared_task
def categorise_opted_in_agents() -> dict:
    """File the memories left in 'general' of every active agent that opted in (the beat runs this daily).

    Each agent is its own transaction; one agent's failure is logged and the others still run.
    """
    from agents.models import Agent

    from .learning import categorise

    agents = Agent.objects.filter(is_active=True, **{f"configuration__{AUTO_CATEGORISE_KEY}": True}).order_by("agent_id")
    done = applied = 0
    for agent in agents:
        try:
            applied += categorise(agent, apply=True)["applied"]
            done += 1
        except Exception:
            logger.exception("categorising the memories of agent %s failed", agent.agent_id)
    return {"agents": done, "applied": applied}


# Hits are buffered in Redis (when the broker is Redis) and counted by one job every few seconds:
# a Celery task per search cost the worker more CPU than the search itself took.
HIT_BUFFER_KEY = "tmws:memory-hits"
HIT_FLUSH_SCHEDULED_KEY = "tmws:memory-hits:flush-scheduled"
HIT_FLUSH_DELAY_SECONDS = 2
# With no worker running the buffer would grow without end: only the newest hits are kept.
HIT_BUFFER_MAX = 100_000


@lru_cache(maxsize=4)
def _redis_client(url: str):
    import redis

    # Bounded waits: with Redis unreachable a write's after-commit signal fails in seconds, not minutes.
    return redis.Redis.from_url(
        url, socket_connect_timeout=settings.TMWS_REDIS_TIMEOUT_SECONDS, socket_timeout=settings.TMWS_REDIS_TIMEOUT_SECONDS
    )


def redis_buffer():
    """The broker's Redis client for buffers and flags, or None (no broker, or a broker other than Redis)."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return _redis_client(url)


def queue_hits(ids: list[str]) -> None:
    """Add search hits to the buffer, scheduling a flush unless one is already on its way."""
    buffer = redis_buffer()
    if buffer is None:
        record_memory_hits.delay(ids)
        return
    pipeline = buffer.pipeline(transaction=False)
    pipeline.rpush(HIT_BUFFER_KEY, *ids)
    pipeline.ltrim(HIT_BUFFER_KEY, -HIT_BUFFER_MAX, -1)
    # The flag expires on its own, so a flush lost with a crashed worker is scheduled again.
    pipeline.set(HIT_FLUSH_SCHEDULED_KEY, "1", nx=True, ex=HIT_FLUSH_DELAY_SECONDS * 30)
    _, _, scheduled = pipeline.execute()
    if scheduled:
        flush_memory_hits.apply_async(countdown=HIT_FLUSH_DELAY_SECONDS)


@shared_task
def flush_memory_hits() -> int:
    """Count every buffered hit in one statement; hits arriving meanwhile schedule the next flush."""
    buffer = redis_buffer()
    if buffer is None:
        return 0
    pipeline = buffer.pipeline(transaction=True)
    pipeline.lrange(HIT_BUFFER_KEY, 0, -1)
    pipeline.delete(HIT_BUFFER_KEY, HIT_FLUSH_SCHEDULED_KEY)
    ids, _ = pipeline.execute()
    return record_memory_hits([raw.decode() for raw in ids])


@shared_task
def record_memory_hits(ids: list[str]) -> int:
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
