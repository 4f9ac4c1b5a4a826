"""Import memories from a JSON Lines file, with a progress bar.

Two kinds of file: an export (`manage.py export_memories`, `GET /api/v2/memories/export`: a header line naming the
format, then one memory per line with its ids, embedding, shares and history; see memories.transfer), or one
POST /api/v2/memories body per line.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
from contextlib import nullcontext

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction
from tqdm import tqdm

from access import SYSTEM
from agents.models import Agent
from core.errors import ServiceError
from memories import transfer
from memories.choices import EmbeddingStatus
from memories.contracts import StoreMemories
from memories.embedding_jobs import embed_batch
from memories.models import Memory
from memories.services import bulk_create_memories


class DryRunRollback(Exception):
    pass


def read_item(number: int, line: str) -> dict:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CommandError(f"line {number}: not valid JSON ({exc.msg}).") from exc
    if not isinstance(item, dict):
        raise CommandError(f"line {number}: each line must be a JSON object.")
    return item


def read_batches(numbered_lines, batch_size: int):
    """Yield batches of (line number, item) from (line number, text) pairs, skipping blank lines; bad JSON names its line."""
    batch = []
    for number, line in numbered_lines:
        if not line.strip():
            continue
        batch.append((number, read_item(number, line)))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def count_lines(path: str) -> int | None:
    """The number of lines of a regular file (for the progress bar's total), None for a stream."""
    if path == "-" or not os.path.isfile(path):
        return None
    lines = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


class Command(BaseCommand):
    help = (
        "Import memories from a JSON Lines file (or - for stdin): an export of export_memories (ids, embeddings, "
        "shares and history kept; agents and namespaces created when missing; run it again to resume), or one "
        "POST /api/v2/memories body per line. Batches are validated and stored all-or-nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the .jsonl file, or - to read standard input")
        parser.add_argument("--agent", help="store as this agent_id (its access rules apply); "
                                            "without it, lines are stored as the system and must name agent_id "
                                            "unless access_level is system (files of POST bodies only)")
        parser.add_argument("--batch-size", type=int, default=None,
                            help=f"memories per transaction (default {transfer.IMPORT_BATCH_SIZE} for an export, "
                                 "TMWS_MAX_BULK_MEMORIES for POST bodies)")
        parser.add_argument("--on-conflict", choices=["map", "skip"], default="map",
                            help="an exported memory whose id is taken here by other content: import it under a new "
                                 "id derived from its own (map, the default) or leave it out (skip)")
        parser.add_argument("--dry-run", action="store_true", help="validate every line, store nothing")

    def handle(self, *args, **options):
        handle = sys.stdin if options["path"] == "-" else self._open(options["path"])
        try:
            numbered = enumerate(handle, start=1)
            first = next(((number, line) for number, line in numbered if line.strip()), None)
            if first is not None:
                numbered = itertools.chain([first], numbered)
                item = read_item(*first)
                if "format" in item:
                    return self._import_export(item, first[0], numbered, options)
            return self._import_bodies(numbered, options)
        finally:
            if handle is not sys.stdin:
                handle.close()

    def _import_export(self, head: dict, header_line: int, numbered, options) -> None:
        """An export's lines: everything but the header, batch by batch (memories.transfer)."""
        if options["agent"]:
            raise CommandError("--agent applies to files of POST bodies; an export is imported as the system.")
        try:
            importer = transfer.Importer(transfer.parse_header(header_line, head), options["on_conflict"])
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        next(numbered)  # the header
        for warning in importer.summary.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        batch_size = max(1, options["batch_size"] or transfer.IMPORT_BATCH_SIZE)
        total = count_lines(options["path"])
        try:
            with transaction.atomic() if options["dry_run"] else nullcontext(), tqdm(
                    total=None if total is None else max(total - header_line, 0), unit="memory",
                    desc="Importing", disable=None) as bar:
                for batch in read_batches(numbered, batch_size):
                    try:
                        parsed = [(number, transfer.parse_line(number, item)) for number, item in batch]
                        importer.import_batch(parsed)
                    except ServiceError as exc:
                        raise CommandError(exc.message) from exc
                    except DatabaseError as exc:
                        raise CommandError(f"lines {batch[0][0]}-{batch[-1][0]}: the database refused them "
                                           f"({(str(exc).strip().splitlines() or [type(exc).__name__])[0]}); nothing of them was "
                                           "stored.") from exc
                    bar.update(len(batch))
                importer.finish()
                if options["dry_run"]:
                    raise DryRunRollback
        except DryRunRollback:
            self.stdout.write(self.style.SUCCESS("Dry run: every line is valid; nothing was stored. It would give:"))
        self._summary(importer.summary)

    def _summary(self, summary) -> None:
        done = self.style.SUCCESS
        self.stdout.write(done(f"Imported {summary.imported + summary.mapped} memories ({summary.mapped} under a new id, "
                               "theirs being taken here by other content)."))
        self.stdout.write(f"Skipped {summary.skipped} already here, {summary.conflicts} whose id is taken here "
                          f"(--on-conflict skip), {summary.expired} expired.")
        self.stdout.write(f"Agents created: {summary.agents_created}; namespaces created: {summary.namespaces_created}.")
        if summary.to_embed:
            self.stdout.write(f"{summary.to_embed} memories were imported without an embedding of this installation's "
                              "model: they are embedded in the background (`manage.py embed_pending` to do it now).")
        if summary.shares_dropped:
            self.stdout.write(f"Shares left out: {summary.shares_dropped}.")
        for warning in summary.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))

    def _import_bodies(self, numbered, options) -> None:
        """One POST /api/v2/memories body per line."""
        actor = self._actor(options["agent"])
        batch_size = max(1, min(options["batch_size"] or settings.TMWS_MAX_BULK_MEMORIES,
                                settings.TMWS_MAX_BULK_MEMORIES))
        stored = embedded = 0
        with tqdm(unit="memory", desc="Importing", disable=None) as bar:
            for batch in read_batches(numbered, batch_size):
                ids = self._store(actor, batch, options["dry_run"])
                stored += len(ids)
                # Without a broker the batch was embedded on commit already; embed_batch skips done rows.
                for start in range(0, len(ids), settings.TMWS_EMBEDDING_CLAIM_SIZE):
                    embed_batch(ids[start : start + settings.TMWS_EMBEDDING_CLAIM_SIZE])
                embedded += Memory.objects.filter(pk__in=ids, embedding_status=EmbeddingStatus.READY).count()
                bar.update(len(batch))
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
