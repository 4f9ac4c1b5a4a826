"""Move every stored embedding to the configured model (TMWS_EMBEDDING_MODEL), resumably."""
from __future__ import annotations

import signal
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from memories import embeddings, reembedding


class StopRequest:
    """SIGTERM or a first Ctrl-C asks the run to stop after the batch in progress; a second Ctrl-C stops at once.

    Raising from the signal handler would interrupt a database call halfway and leave the connection unusable.
    """

    def __init__(self):
        self.requested = False
        self.previous = {}

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


class Command(BaseCommand):
    help = (
        "Re-embed the memories whose embedding another model made with the configured model, in batches of "
        "one short transaction each; search keeps answering. Stop it any time: the next run continues."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=256, help="memories per batch and transaction")
        parser.add_argument("--dry-run", action="store_true", help="say how many memories would move; change nothing")
        parser.add_argument("--force", action="store_true",
                            help="also re-embed memories already on the configured model (say, after its files changed)")
        parser.add_argument("--after", default=None,
                            help="start after this memory id (continues an interrupted --force run)")
        parser.add_argument("--limit", type=int, default=None, help="stop after about this many memories")

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        try:
            target = embeddings.configured_model()
        except Exception as exc:
            raise CommandError(str(exc)) from exc
        force = options["force"]
        rows = reembedding.movable(target.name, force)
        if options["after"]:
            rows = rows.filter(pk__gt=options["after"])
        total = rows.count()
        before = reembedding.embeddings_by_model()
        self.stdout.write(f"Configured model: {target.name}. Embeddings now: {_counts(before)}.")
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {total} memories would be re-embedded with {target.name}; nothing changed.")
            return
        if not total:
            self.stdout.write(f"Nothing to move: every embedded memory is on {target.name}.")
            self._waiting()
            return
        if options["limit"]:
            total = min(total, options["limit"])
        try:
            embeddings.loaded_model()
        except Exception as exc:
            raise CommandError(f"The embedding model cannot be loaded: {exc}") from exc
        moved = changed = 0
        after = options["after"]
        started = time.perf_counter()
        interrupted = False
        try:
            with StopRequest() as stop, tqdm(
                total=total, unit="memory", desc=f"Re-embedding with {target.name}", disable=None
            ) as bar:
                while moved + changed < total:
                    if stop.requested:
                        interrupted = True
                        break
                    size = min(options["batch_size"], total - moved - changed)
                    result = reembedding.move_batch(target.name, after, size, force)
                    if not result.read:
                        break
                    moved, changed, after = moved + result.moved, changed + result.changed, result.last_pk
                    bar.update(result.read)
        except KeyboardInterrupt:
            # Stopped mid-batch: the server rolls the batch back; the connection may be mid-command, so drop it.
            interrupted = True
            connection.close()
        seconds = time.perf_counter() - started
        rate = f" ({moved / seconds:.0f}/s)" if seconds > 0 and moved else ""
        self.stdout.write(f"Re-embedded {moved} memories with {target.name} in {seconds:.1f} s{rate}; "
                          f"{changed} changed meanwhile and were left to the embedding drain.")
        left = reembedding.movable(target.name).count()
        self.stdout.write(f"Embeddings now: {_counts(reembedding.embeddings_by_model())}.")
        if interrupted:
            again = f" --force --after {after}" if force and after else ""
            self.stdout.write(self.style.WARNING(
                f"Interrupted: {left} memories are still on other models; run `manage.py reembed{again}` to continue."
            ))
        elif left:
            self.stdout.write(f"{left} memories are still on other models; run `manage.py reembed` again to move them.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Every embedded memory is on {target.name}."))
        self._waiting()

    def _waiting(self) -> None:
        waiting = reembedding.waiting_counts()
        if waiting["pending"] or waiting["failed"]:
            self.stdout.write(
                f"Not embedded yet: {waiting['pending']} pending (the drain embeds them with the configured model), "
                f"{waiting['failed']} failed (`manage.py embed_pending --retry-failed`)."
            )


def _counts(by_model: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in by_model.items()) or "none"
