"""manage.py validate_migration: prove a migration lost nothing; non-zero exit on any mismatch."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from compat.source import SourceError
from compat.validation import as_json, as_text, validate


class Command(BaseCommand):
    help = (
        "Check counts per table, owners, orphans, content and embedding checksums and access rules of "
        "migrated persona-era data. With --source-url the source is compared row by row."
    )

    def add_arguments(self, parser):
        parser.add_argument("--source-url", help="postgresql:// URL of the persona-era database (read only).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **options):
        try:
            checks = validate(options["source_url"])
        except SourceError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(as_json(checks), indent=2, default=str))
        else:
            self.stdout.write(as_text(checks))
        failed = [c.name for c in checks if not c.ok]
        if failed:
            raise CommandError(f"Validation failed: {', '.join(failed)}.", returncode=1)
