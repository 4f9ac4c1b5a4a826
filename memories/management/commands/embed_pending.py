"""Embed every memory whose embedding is pending (after a bulk load, or to retry failures)."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from tqdm import tqdm

from memories.choices import EmbeddingStatus
from memories.embedding_jobs import embed_batch
from memories.models import Memory


class Command(BaseCommand):
    help = "Compute embeddings for pending memories in batches, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--retry-failed", action="store_true", help="also retry memories whose embedding failed")
        parser.add_argument("--batch-size", type=int, default=settings.TMWS_EMBEDDING_CLAIM_SIZE,
                            help="memories per transaction (default TMWS_EMBEDDING_CLAIM_SIZE)")

    def handle(self, *args, **options):
        if options["retry_failed"]:
            reset = Memory.objects.filter(embedding_status=EmbeddingStatus.FAILED).update(
                embedding_status=EmbeddingStatus.PENDING, embedding_attempts=0
            )
            self.stdout.write(f"{reset} failed memories queued again.")
        ids = list(Memory.objects.pending_embedding().order_by("created_at").values_list("pk", flat=True))
        if not ids:
            self.stdout.write("Nothing to embed: no pending memories.")
            return
        embedded = failed = 0
        batch = max(1, options["batch_size"])
        with tqdm(total=len(ids), unit="memory", desc="Embedding", disable=None) as bar:
            for start in range(0, len(ids), batch):
                done, bad = embed_batch(ids[start : start + batch])
                embedded += done
                failed += bad
                bar.update(len(ids[start : start + batch]))
        self.stdout.write(self.style.SUCCESS(f"Embedded {embedded} memories; {failed} failed."))
        if failed:
            self.stdout.write("Failed memories keep their error; see the admin or run again with --retry-failed.")
