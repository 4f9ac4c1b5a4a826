"""Background jobs on memories: embedding and access tracking. Ids in, bulk work, idempotent."""
from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .choices import EmbeddingStatus
from .models import Memory

logger = logging.getLogger(__name__)
MAX_EMBEDDING_ATTEMPTS = 3


def embed_batch(ids) -> tuple[int, int]:
    """Embed the still-pending memories among `ids`; return (embedded, failed)."""
    from .embeddings import embed_texts

    with transaction.atomic():
        # skip_locked lets several workers share a backlog without embedding a row twice.
        memories = list(
            Memory.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, embedding_status=EmbeddingStatus.PENDING)
            .only("id", "content", "embedding_attempts")
        )
        if not memories:
            return 0, 0
        now = timezone.now()
        try:
            vectors = embed_texts([m.content for m in memories])
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
            return 0, len(memories)
        for memory, vector in zip(memories, vectors, strict=True):
            memory.embedding = vector
            memory.embedding_status = EmbeddingStatus.READY
            memory.embedding_error = ""
            memory.embedding_attempts += 1
        Memory.objects.bulk_update(memories, ["embedding", "embedding_status", "embedding_error", "embedding_attempts"])
        return len(memories), 0


@shared_task(bind=True, max_retries=MAX_EMBEDDING_ATTEMPTS, default_retry_delay=10)
def embed_memories(self, ids: list[str]) -> dict:
    """Embed the given memories in batches; rows that failed stay pending for a retry until attempts run out."""
    batch_size = settings.TMWS_EMBEDDING_BATCH_SIZE
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


def enqueue_embedding(ids) -> None:
    """Queue embedding once the surrounding transaction commits (never for rows that were rolled back)."""
    ids = [str(pk) for pk in ids]
    if ids:
        transaction.on_commit(lambda: embed_memories.delay(ids))


@shared_task
def record_memory_hits(ids: list[str]) -> int:
    """Count search hits in one statement, off the search's own path."""
    return Memory.objects.filter(pk__in=ids).update(
        access_count=F("access_count") + 1, last_accessed_at=timezone.now()
    )
