"""manage.py migrate_personas_to_agents: import a persona-era installation (or roll an import back)."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from compat.adapter import LEGACY_NAMESPACE
from compat.importer import DEFAULT_BATCH_SIZE, ImportOptions, Progress, RollbackRefused, rollback_imports, run_import
from compat.source import TABLES, SourceError
from memories.choices import AccessLevel


class Command(BaseCommand):
    help = (
        "Import personas, memories (with their embeddings), tasks and workflows from a persona-era "
        "PostgreSQL database. Re-running skips what is already imported and resumes an interrupted run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--source-url", help="postgresql:// URL of the persona-era database (read only).")
        parser.add_argument("--keys-file", help="File the new agents' API keys are appended to (mode 0600).")
        parser.add_argument("--namespace", default=LEGACY_NAMESPACE, help="Namespace for old memories (default: legacy).")
        parser.add_argument("--access-level", default=AccessLevel.SHARED, choices=["private", "shared", "public"],
                            help="Access level of old memories (default: shared).")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
        parser.add_argument("--reembed", action="store_true", help="Compute new embeddings instead of copying.")
        parser.add_argument("--unowned-agent", help="Agent (or persona name) that owns memories without a persona.")
        parser.add_argument("--dry-run", action="store_true", help="Check the source and report; write nothing.")
        parser.add_argument("--rollback", action="store_true", help="Remove everything earlier imports wrote.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bars.")

    def handle(self, *args, **options):
        if options["rollback"]:
            try:
                counts = rollback_imports()
            except RollbackRefused as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write("Rolled back: " + ", ".join(f"{t} {counts.get(t, 0)}" for t in TABLES))
            return
        if not options["source_url"]:
            raise CommandError("--source-url is required (or --rollback).")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        import_options = ImportOptions(
            source_url=options["source_url"], namespace=options["namespace"], access_level=options["access_level"],
            batch_size=options["batch_size"], reembed=options["reembed"], dry_run=options["dry_run"],
            keys_file=options["keys_file"], unowned_agent=options["unowned_agent"],
        )
        if not import_options.dry_run and not import_options.keys_file:
            raise CommandError("--keys-file is required: new agents' API keys are written there, never printed.")
        show_progress = not options["no_progress"] and sys.stderr.isatty()
        try:
            report = run_import(import_options, Progress(_tqdm_bar if show_progress else None), log=self._log)
        except SourceError as exc:
            raise CommandError(str(exc)) from exc
        self._summary(report, import_options)

    def _log(self, message: str) -> None:
        self.stdout.write(message)

    def _summary(self, report, options) -> None:
        verb = "Would import" if report.dry_run else "Imported"
        self.stdout.write(f"{'Dry run: nothing written. ' if report.dry_run else ''}"
                          f"Source {options.source_url and _host(options.source_url)}")
        for table in TABLES:
            self.stdout.write(
                f"  {table:<10} source {report.source_counts.get(table, 0):>7}  "
                f"already imported {report.already_imported.get(table, 0):>7}  "
                f"{verb.lower()} {report.imported.get(table, 0):>7}"
            )
        if not report.dry_run:
            self.stdout.write(f"  embeddings copied {report.embeddings_copied}, "
                              f"queued for embedding {report.embeddings_pending}")
            self.stdout.write(f"  {report.keys_written} new API key(s) appended to {options.keys_file}")
            self.stdout.write(self.style.SUCCESS(f"Import run {report.run_id} completed."))
            self.stdout.write("Next: manage.py validate_migration --source-url <same URL>")


def _host(url: str) -> str:
    from compat.source import redact

    return redact(url)


def _tqdm_bar(table: str, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"{table:<10}", unit="row", file=sys.stderr, leave=True)
