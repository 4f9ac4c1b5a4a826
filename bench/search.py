"""Search benchmark: `python -m bench.search [--size N]` prints one JSON document.

It builds (once) a reproducible corpus in its own embedded database (TMWS_DATA_DIR, default
/tmp/tmws-bench), loads it with COPY and builds the HNSW index afterwards, then measures:

- DB-level semantic search (the code path of memories.search, agent scenarios under
  row-level security) p50/p95 and recall@10 against an exact scan, at four filter
  selectivities (~0.1%, 1%, 10%, 100% of rows); hybrid timings alongside;
- HTTP search p50/p95 through the production server (gunicorn), including the query embedding;
- POST /memories p50 with a Redis broker and a Celery worker (the production setup);
- bulk ingest rate: POST /memories/bulk until every embedding is ready.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench.figures import percentile

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = "/tmp/tmws-bench"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="memories in the corpus (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=100, help="timed queries per scenario")
    parser.add_argument("--data-dir", default=os.environ.get("TMWS_BENCH_DATA_DIR", DEFAULT_DATA_DIR))
    parser.add_argument("--redis", default=os.environ.get("TMWS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
                        help="broker for the create/ingest figures ('' skips them)")
    parser.add_argument("--skip-http", action="store_true", help="only the DB-level figures")
    parser.add_argument("--ingest", type=int, default=5000, help="memories to bulk-ingest for the rate")
    parser.add_argument("--output", help="also write the JSON here (e.g. bench/results/search-100k.json)")
    parser.add_argument("--reload", action="store_true", help="rebuild the corpus even if it is loaded")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup_django(data_dir: str) -> None:
    os.environ["TMWS_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tmws_site.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.pop("CELERY_BROKER_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def describe_machine() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": "",
        "memory_gb": None,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_django(args.data_dir)
    from bench import db_bench, http_bench, load

    started = time.time()
    fixture = load.ensure_corpus(args.size, args.seed, reload=args.reload, log=log)
    load.vacuum(log)
    report = {
        "benchmark": "tmws search",
        "corpus": fixture.describe(),
        "machine": describe_machine(),
        "database": load.database_versions(),
    }
    report["machine"]["calibration"] = calibration()
    report["storage"] = load.storage()
    report["postgresql_memory"] = load.server_memory(Path(args.data_dir) / "pgdata")
    report["db_search"] = db_bench.run(fixture, args.queries, log=log)
    if not args.skip_http:
        report["http"] = http_bench.run(fixture, args, log=log)
    report["targets"] = targets(report)
    report["elapsed_s"] = round(time.time() - started, 1)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return report


def calibration() -> dict:
    """The same fixed CPU work on every run, so results from different (or busier) machines can be compared."""
    from memories import embeddings

    texts = [f"How did we configure the deployment pipeline for service {i} last week?" for i in range(60)]
    torch_model = embeddings.TorchEncoder(embeddings.get_model())
    torch_model.embed(texts[:10])
    times = []
    for text in texts:
        started = time.perf_counter()
        torch_model.embed([text])
        times.append((time.perf_counter() - started) * 1000)
    return {
        "what": "p50 of one 17-token query embedded with PyTorch (sentence-transformers) on the main thread",
        "torch_query_embedding_p50_ms": percentile(times, 50),
    }


def targets(report: dict) -> dict:
    """Each ARCHITECTURE section 8 target with the measured value and whether it holds."""
    result = {}
    size = report["corpus"]["memories"]
    # ARCHITECTURE section 8 sets 10 ms at 100,000 memories; at a million the budget is 20 ms.
    db_limit = 20 if size >= 1_000_000 else 10
    for name, scenario in report["db_search"]["semantic"].items():
        result[f"db_search_p95_ms[{name}] <= {db_limit}"] = scenario["p95_ms"] <= db_limit
        result[f"recall@10[{name}] >= 0.95"] = scenario["recall_at_10"] >= 0.95
    http = report.get("http") or {}
    if "search_hybrid" in http:
        result["http_search_p50_ms <= 30"] = http["search_hybrid"]["p50_ms"] <= 30
        result["http_search_p95_ms <= 60"] = http["search_hybrid"]["p95_ms"] <= 60
        if size <= 100_000:  # serving like production: hybrid p50 at 100,000 memories
            result["http_search_p50_ms <= 20"] = http["search_hybrid"]["p50_ms"] <= 20
    if "create" in http:
        result["create_p50_ms <= 15"] = http["create"]["p50_ms"] <= 15
    if "bulk_ingest" in http:
        result["ingest_per_s >= 200"] = http["bulk_ingest"]["memories_per_s"] >= 200
    return result


if __name__ == "__main__":
    main()
