"""Export memories to a JSON Lines file that `import_memories` reads (memories.transfer), with a progress bar."""
from __future__ import annotations

import socket
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from access import SYSTEM
from core.errors import ServiceError
from memories import transfer
from memories.contracts import ExportMemories


class Command(BaseCommand):
    help = (
        "Export memories with their embeddings, the model that made them, access levels, shares, tags and history, "
        "one JSON line each after a header line. `manage.py import_memories FILE` reads it into another installation."
    )

    def add_arguments(self, parser):
        parser.add_argument("--namespace", help="only memories in this namespace and the namespaces below it "
                                                "(a name or a path such as company/team)")
        parser.add_argument("--agent", help="only memories owned by this agent_id")
        parser.add_argument("--output", default="-", help="the file to write (default -: standard output)")
        parser.add_argument("--chunk-size", type=int, default=transfer.EXPORT_CHUNK_SIZE,
                            help="memories read per query")

    def handle(self, *args, **options):
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1.")
        source = f"{socket.gethostname()}/{connection.settings_dict['NAME']}"
        try:
            # The command runs with every right, as `manage.py` always does: as the system itself.
            plan = transfer.export_plan(SYSTEM, ExportMemories.parse(
                {"namespace": options["namespace"], "agent_id": options["agent"]}), source=source)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        to_stdout = options["output"] == "-"
        try:
            output = self.stdout if to_stdout else open(options["output"], "w", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {options['output']}: {exc.strerror}.") from exc
        written = -1  # the header is not a memory
        try:
            with tqdm(total=plan.memories.count(), unit="memory", desc="Exporting", disable=None,
                      file=sys.stderr) as bar:
                for line in transfer.export_lines(plan, options["chunk_size"]):
                    output.write(line)
                    if written >= 0:
                        bar.update(1)
                    written += 1
        finally:
            if not to_stdout:
                output.close()
        where = "standard output" if to_stdout else options["output"]
        self.stderr.write(self.style.SUCCESS(f"Exported {written} memories to {where}."))
