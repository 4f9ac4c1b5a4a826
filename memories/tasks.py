"""Celery's jobs on memories (embedding, hit counting, categorising) and how writes hand work to them.

Ids in, bulk work, idempotent. The work itself is in memories.embedding_jobs and memories.hits;
this module decides where it runs: a Celery worker, the web process's embedder thread
(memories.background) or, in processes with neither, the committing thread.
"""
from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import transaction

from core.redis_client import broker_redis

from . import background, hits
from .choices import EmbeddingStatus
from .embedding_jobs import MAX_EMBEDDING_ATTEMPTS, embed_batch, embed_pending
from .models import Memory

logger = logging.getLogger(__name__)


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
    if background.in_background():  # a web process without a broker: its embedder thread drains
        transaction.on_commit(background.wake, robust=True)
        return
    if len(ids) < settings.TMWS_EMBEDDING_BATCH_SIZE and broker_redis() is not None:
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
    buffer = broker_redis()
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
    buffer = broker_redis()
    batch_size = settings.TMWS_EMBEDDING_CLAIM_SIZE
    started = time.monotonic()
    embedded, failed = 0, []
    while True:
        done, bad = embed_pending(Memory.objects.exclude(pk__in=failed), limit=batch_size)
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


@shared_task
def delete_expired_memories() -> int:
    """Delete the memories whose expiry has come (the beat runs this every TMWS_EXPIRY_SWEEP_SECONDS)."""
    from .expiry import delete_expired_memories as delete

    return delete()


@shared_task
def decay_weights() -> dict:
    """Decay the weights of agents that turned decay on (the beat runs this every TMWS_DECAY_SECONDS)."""
    from .decay import decay_weights as decay

    return decay()


@shared_task
def flush_memory_hits() -> int:
    """Count every buffered hit and write every buffered usage event, one statement each; what arrives meanwhile
    schedules the next flush."""
    return hits.record_usage(*hits.take_buffered())


@shared_task
def record_memory_hits(ids: list[str], events: list[dict] | None = None) -> int:
    """Count search hits (an id listed twice counts twice) and write usage events; returns memories updated."""
    return hits.record_usage(ids, events or [])


def queue_hits(ids: list[str], events: list[dict] | None = None) -> None:
    """Add search hits and usage events to the buffer, scheduling a flush unless one is already on its way.

    Without Redis (tests, `make run` without a broker) they are written by a task, in-process.
    """
    if not ids and not events:
        return
    buffer = broker_redis()
    if buffer is None:
        record_memory_hits.delay(ids, events or [])
    elif hits.buffer_hits(buffer, ids, events or []):
        flush_memory_hits.apply_async(countdown=hits.HIT_FLUSH_DELAY_SECONDS)


@shared_task
def delete_old_usage_events() -> int:
    """Delete usage events older than TMWS_USAGE_RETENTION_DAYS (the beat runs this daily)."""
    from .usage_log import delete_old_events

    return delete_old_events()


@shared_task
def learn_agent_patterns(agent_pk: str, now: str | None = None) -> bool:
    """Learn one agent's patterns (memories.patterns); returns whether the stored pattern changed."""
    from datetime import datetime

    from agents.models import Agent

    from .patterns import learn_patterns

    agent = Agent.objects.filter(pk=agent_pk).first()
    if agent is None:
        return False
    return learn_patterns(agent, datetime.fromisoformat(now) if now else None)[1]


@shared_task
def learn_all_patterns() -> int:
    """Send one pattern task per active agent not yet done for the current window (the beat runs this nightly).

    Resumable: agents whose pattern already covers the window are skipped, so a run cut short is completed
    by the next; running it twice sends nothing the second time once the tasks are done.
    """
    from django.utils import timezone

    from .patterns import agents_to_learn

    now = timezone.now().isoformat()
    sent = 0
    for agent_pk in list(agents_to_learn().values_list("pk", flat=True)):
        learn_agent_patterns.delay(str(agent_pk), now)
        sent += 1
    return sent
