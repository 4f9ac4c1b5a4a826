"""Moving stored embeddings to the configured model, batch by batch, while search keeps answering.

A batch is read without locks, embedded, then written in one short transaction that replaces a
row's vector only if the row still holds the content and the model it was read with: a memory
edited meanwhile is left to the embedding drain, which embeds it again anyway. Nothing else
changes on a moved row (not `updated_at`: the memory itself did not change). Rows already on the
target model are never taken again, so a run that stops anywhere is continued by the next one.

Until every row is moved, semantic ranking compares the query only with rows of the configured
model (`MemoryQuerySet.embedded_by_configured_model`); keyword ranking finds all of them.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import OperationalError, connection, transaction
from django.db.models import Count, Q

from .choices import EmbeddingStatus
from .models import Memory

# A write that lost a deadlock against a concurrent multi-row update is tried again this often.
WRITE_ATTEMPTS = 3


@dataclass
class BatchResult:
    read: int  # rows taken from the database
    moved: int  # rows now holding the target model's embedding
    changed: int  # rows edited (or moved by someone else) between read and write: left alone
    last_pk: object  # where the next batch starts


def movable(target: str, force: bool = False):
    """The embedded memories a move to `target` takes: those of other models (with `force`, all of them).

    Only `ready` rows: pending ones are embedded by the drain with the configured model anyway.
    """
    rows = Memory.objects.filter(embedding__isnull=False, embedding_status=EmbeddingStatus.READY)
    return rows if force else rows.exclude(embedding_model=target)


def embeddings_by_model() -> dict[str, int]:
    """How many memories hold an embedding of each model."""
    rows = (Memory.objects.filter(embedding__isnull=False).order_by().values_list("embedding_model")
            .annotate(n=Count("pk")))
    return dict(sorted(rows))


def waiting_counts() -> dict[str, int]:
    """Memories with no embedding yet, by status (pending: the drain's; failed: `embed_pending --retry-failed`)."""
    counts = Memory.objects.filter(embedding__isnull=True).aggregate(
        pending=Count("pk", filter=Q(embedding_status=EmbeddingStatus.PENDING)),
        failed=Count("pk", filter=Q(embedding_status=EmbeddingStatus.FAILED)),
    )
    return counts


def move_batch(target: str, after=None, batch_size: int = 256, force: bool = False) -> BatchResult:
    """Re-embed the next `batch_size` movable memories after primary key `after` with the loaded model."""
    from .embeddings import embed_documents

    rows = movable(target, force)
    if after is not None:
        rows = rows.filter(pk__gt=after)
    batch = list(rows.order_by("pk").values_list("pk", "content", "embedding_model")[:batch_size])
    if not batch:
        return BatchResult(0, 0, 0, after)
    model_name, vectors = embed_documents([content for _, content, _ in batch])
    if model_name != target:
        raise RuntimeError(f"the loaded model is {model_name}, not {target}: restart with the setting in force")
    params = [
        model_name,
        [pk for pk, _, _ in batch],
        ["[" + ",".join(map(repr, vector.tolist())) + "]" for vector in vectors],
        [content for _, content, _ in batch],
        [model for _, _, model in batch],
    ]
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    UPDATE {Memory._meta.db_table} AS memory
                       SET embedding = batch.embedding::vector, embedding_model = %s
                      FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[])
                           AS batch (id, embedding, content, embedding_model)
                     WHERE memory.id = batch.id AND memory.content = batch.content
                       AND memory.embedding_model = batch.embedding_model AND memory.embedding IS NOT NULL
                    """,
                    params,
                )
                moved = cursor.rowcount
            break
        except OperationalError:
            if attempt == WRITE_ATTEMPTS:
                raise
    return BatchResult(len(batch), moved, len(batch) - moved, batch[-1][0])
