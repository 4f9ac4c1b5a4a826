"""Import memories from a JSON Lines file (one POST /memories body per line), with a progress bar."""
from __future__ import annotations

import json
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from access import SYSTEM
from agents.models import Agent
from core.errors import ServiceError
from memories.choices import EmbeddingStatus
from memories.contracts import StoreMemories
from memories.embedding_jobs import embed_batch
from memories.models import Memory
from memories.services import bulk_create_memories


class DryRunRollback(Exception):
    pass


def read_batches(handle, batch_size: int):
    """Yield (first line number, items) batches, skipping blank lines; bad JSON names its line."""
    batch, first = [], None
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CommandError(f"line {number}: not valid JSON ({exc.msg}).") from exc
        if not isinstance(item, dict):
            raise CommandError(f"line {number}: each line must be a JSON object.")
        if first is None:
            first = number
        batch.append((number, item))
        if len(batch) >= batch_size:
            yield batch
            batch, first = [], None
    if batch:
        yield batch


class Command(BaseCommand):
    help = (
        "Import memories from a JSON Lines file (or - for stdin). Each line is a memory as POST /api/v2/memories "
        "takes it. Batches are validated all-or-nothing and embedded as they are stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the .jsonl file, or - to read standard input")
        parser.add_argument("--agent", help="store as this agent_id (its access rules apply); "
                                            "without it, lines are stored as the system and must name agent_id "
                                            "unless access_level is system")
        parser.add_argument("--batch-size", type=int, default=settings.TMWS_MAX_BULK_MEMORIES)
        parser.add_argument("--dry-run", action="store_true", help="validate every line, store nothing")

    def handle(self, *args, **options):
        actor = self._actor(options["agent"])
        batch_size = max(1, min(options["batch_size"], settings.TMWS_MAX_BULK_MEMORIES))
        handle = sys.stdin if options["path"] == "-" else self._open(options["path"])
        stored = embedded = 0
        try:
            with tqdm(unit="memory", desc="Importing", disable=None) as bar:
                for batch in read_batches(handle, batch_size):
                    ids = self._store(actor, batch, options["dry_run"])
                    stored += len(ids)
                    # Without a broker the batch was embedded on commit already; embed_batch skips done rows.
                    for start in range(0, len(ids), settings.TMWS_EMBEDDING_CLAIM_SIZE):
                        embed_batch(ids[start : start + settings.TMWS_EMBEDDING_CLAIM_SIZE])
                    embedded += Memory.objects.filter(pk__in=ids, embedding_status=EmbeddingStatus.READY).count()
                    bar.update(len(batch))
        finally:
            if handle is not sys.stdin:
                handle.close()
        if options["dry_run"]:
            self.stdout.write(self.style.SUCCESS("Dry run: every line is valid; nothing was stored."))
            return
        self.stdout.write(self.style.SUCCESS(f"Imported {stored} memories; {embedded} embedded now."))

    def _open(self, path):
        try:
            return open(path, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc

    def _actor(self, agent_id):
        if agent_id:
            agent = Agent.objects.select_related("user", "namespace").filter(agent_id=agent_id).first()
            if agent is None:
                raise CommandError(f"Agent '{agent_id}' does not exist.")
            return agent
        # The command runs with every right, as `manage.py` always does: as the system itself.
        return SYSTEM

    def _store(self, actor, batch, dry_run: bool) -> list:
        try:
            with transaction.atomic():
                memories = bulk_create_memories(actor, StoreMemories.parse({"memories": [item for _, item in batch]}))
                if dry_run:
                    raise DryRunRollback
        except DryRunRollback:
            return []
        except ServiceError as exc:
            raise CommandError(self._locate(exc, batch)) from exc
        return [memory.pk for memory in memories]

    @staticmethod
    def _locate(exc: ServiceError, batch) -> str:
        # bulk_create_memories names the item as memories[i]; turn that into the file's line number.
        message = exc.message
        if message.startswith("memories[") and "]" in message:
            index = int(message[len("memories["): message.index("]")])
            return f"line {batch[index][0]}: {message[message.index(']') + 2:].lstrip(': ')}"
        return message
