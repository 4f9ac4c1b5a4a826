"""Expired memories: deleted in batches by a periodic job (reads stop returning them the moment they expire)."""
from __future__ import annotations

from django.db import transaction

from .models import Memory


def delete_expired_memories(batch_size: int = 500) -> int:
    """Delete the memories whose expiry has come, a batch per transaction; answers how many went.

    Deleting erases their history and shares with them. Reads never return them from the moment they
    expire (memories.querysets.unexpired), whenever this runs.
    """
    deleted = 0
    while True:
        with transaction.atomic():
            batch = list(Memory.objects.expired().order_by("expires_at").values_list("pk", flat=True)[:batch_size])
            if not batch:
                return deleted
            Memory.objects.filter(pk__in=batch).delete()
        deleted += len(batch)
