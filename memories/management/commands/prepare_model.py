"""Load the embedding model once ahead of serving: exports the ONNX graph if missing and checks it."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from memories import embeddings


class Command(BaseCommand):
    help = (
        "Load the embedding model (exporting its ONNX Runtime graph into the data directory if missing, "
        "then checking it against PyTorch), choose its precision on this machine (TMWS_EMBEDDING_PRECISION=auto) "
        "and report which backend and precision run it, and why."
    )

    def handle(self, *args, **options):
        try:
            model = embeddings.configured_model()
            self.stdout.write(f"Loading the embedding model {model.name} from {model.path} ...")
            ready = embeddings.warm_up()
        except Exception as exc:  # the model cannot run at all: say so plainly
            raise CommandError(f"The embedding model cannot be loaded: {exc}") from exc
        where = f" ({ready['graph']})" if ready["graph"] else ""
        self.stdout.write(
            f"Embedding model ready: {ready['backend']} backend, {ready['precision']}{where}; "
            f"loaded in {ready['load_seconds']} s, one query takes {ready['query_ms']} ms."
        )
        self.stdout.write(f"Precision {ready['precision']}: {ready['reason']}.")
