"""The embedding unit of work: claim pending memories, embed them with the configured model, write the vectors.

Celery's tasks (memories.tasks) and the web process's embedder thread (memories.background) both
run it; it knows neither of them.
"""
from __future__ import annotations

import logging

from django.db import connection, transaction
from django.utils import timezone

from .choices import EmbeddingStatus
from .models import Memory

logger = logging.getLogger(__name__)

MAX_EMBEDDING_ATTEMPTS = 3


def embed_batch(ids) -> tuple[int, int]:
    """Embed the still-pending memories among `ids`; return (embedded, failed)."""
    embedded, failed = embed_pending(Memory.objects.filter(pk__in=ids))
    return len(embedded), len(failed)


def embed_pending(queryset, limit: int | None = None) -> tuple[list, list]:
    """Embed up to `limit` pending memories of `queryset` in one transaction; return (embedded ids, failed ids).

    The configured model embeds them, and each row records its name with the vector.
    """
    from .embeddings import embed_documents, ensure_loaded

    try:
        # A process's first batch loads the model (seconds) before it locks its rows, not while holding
        # them: a freshly (re)started worker would otherwise block edits and hit counts of those rows.
        ensure_loaded()
    except Exception:  # the batch below meets the same error and records it on its rows
        logger.debug("the embedding model could not be loaded ahead of a batch", exc_info=True)
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
