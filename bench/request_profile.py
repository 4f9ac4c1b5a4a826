"""Where a request's CPU goes: `python -m bench.request_profile [--output bench/results/request-profile-after.json]`.

In its own embedded database (--data-dir) it registers 50 agents in 5 namespaces, stores --seed memories
(embedded before the run) and then sends the load benchmark's mix (bench/load_http.py: search 4, create 2, get 2,
list 2) through Django's full request path (middleware, authentication, DRF, views, services, the ORM,
PostgreSQL) in this process, --requests of them, under cProfile. Creates queue their embedding on a Redis broker
of the benchmark's own database, as a web process behind `make serve` does: workers, not requests, embed.

It prints one JSON document: the process CPU per request (user + system, all threads), PostgreSQL's CPU per
request (its server processes, read from /proc), and the main thread's CPU (cProfile timed by the thread's CPU
clock, so waits count for nothing) split by where it was spent (each function's own time, summed by module
family): Django's request handling, DRF, ORM query compilation, the database driver, the access rules, the search
code, JSON rendering, and the rest. A search embeds its query on a helper thread, which cProfile does not see:
that is the difference between the process CPU and the main thread's ("other threads: query embedding").
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import resource
import time

from bench.figures import emit
from bench.search import calibration, describe_machine, log, setup_django

MIX = {"search": 4, "create": 2, "get": 2, "list": 2}
QUERIES = ["deploy approvals", "database password rotation", "release notes for the sprint", "who owns the budget",
           "incident review last week", "customer onboarding steps", "office hours", "API rate limits"]
# Module families, first match wins (paths as cProfile reports them).
FAMILIES = [
    ("query embedding (main thread)", ("onnxruntime", "tokenizers", "memories/embeddings.py", "transformers")),
    ("database driver", ("psycopg", "psycopg_pool")),
    ("ORM query compilation", ("django/db/models", "django/db/backends", "django/db/utils")),
    ("DRF", ("rest_framework",)),
    ("JSON rendering and parsing", ("json/", "orjson", "ujson")),
    ("access rules", ("/access/",)),
    ("search and memory code", ("/memories/",)),
    ("Django request handling, middleware, auth", ("django/core", "django/middleware", "django/contrib",
                                                   "django/http", "django/utils", "django/urls", "/core/")),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("TMWS_PROFILE_DATA_DIR", "/tmp/tmws-profile"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="broker the creates queue embeddings on")
    parser.add_argument("--seed", type=int, default=3000, help="memories stored and embedded before the run")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--output", help="also write the JSON here")
    return parser.parse_args(argv)


def prepare(seed: int):
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench.load_http import prepare_agents
    from memories.models import Memory

    agents = prepare_agents(50)
    if Memory.objects.count() < seed:
        from memories.contracts import StoreMemories
        from memories.embedding_jobs import embed_batch
        from memories.services import bulk_create_memories

        rng = random.Random(7)
        words = " ".join(QUERIES).split()
        for start in range(0, seed, 250):
            batch = []
            for index in range(start, min(seed, start + 250)):
                agent = agents[index % len(agents)]
                text = " ".join(rng.choice(words) for _ in range(12))
                batch.append({"content": f"Note {index}: {text}.", "access_level": rng.choice(["private", "shared"]),
                              "namespace": agent["namespace"]})
            from agents.models import Agent

            owner = Agent.objects.get(agent_id=agents[start // 250 % len(agents)]["agent_id"])
            made = bulk_create_memories(owner, StoreMemories.parse({"memories": [
                {**item, "namespace": owner.namespace.namespace} for item in batch]}))
            embed_batch([memory.pk for memory in made])
    return agents


def postgres_cpu(data_dir: str) -> float:
    """CPU seconds (user + system) used so far by the PostgreSQL server of `data_dir`: its postmaster and children."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(pid)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / ticks)
    servers = {pid for pid, (_, command, _) in table.items() if "postgres" in command and data_dir in command}
    return sum(cpu for pid, (parent, _, cpu) in table.items() if pid in servers or parent in servers)


def family(path: str) -> str:
    for name, needles in FAMILIES:
        if any(needle in path for needle in needles):
            return name
    return "other"


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ["CELERY_BROKER_URL"] = args.redis
    setup_django(args.data_dir)
    os.environ["CELERY_BROKER_URL"] = args.redis
    from django.conf import settings

    settings.CELERY_BROKER_URL = args.redis
    from rest_framework.test import APIClient

    from memories import embeddings

    agents = prepare(args.seed)
    embeddings.warm_up()
    clients = []
    for agent in agents:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent['key']}")
        clients.append(client)
    rng = random.Random(11)
    ids: dict[int, list[str]] = {}
    kinds = [kind for kind, weight in MIX.items() for _ in range(weight)]

    def one(client) -> int:
        kind = rng.choice(kinds)
        own = ids.setdefault(id(client), [])
        if kind == "search":
            response = client.post("/api/v2/memories/search", {"query": rng.choice(QUERIES), "limit": 10},
                                   format="json")
        elif kind == "create":
            response = client.post("/api/v2/memories", {"content": f"Load note {rng.random():.6f} about "
                                                        f"{rng.choice(QUERIES)}."}, format="json")
            if response.status_code == 201:
                own.append(response.json()["id"])
        elif kind == "get" and own:
            response = client.get(f"/api/v2/memories/{rng.choice(own)}")
        else:
            response = client.get("/api/v2/memories", {"limit": 20})
        return response.status_code

    for index in range(50):  # warm the caches and the connection
        one(clients[index % len(clients)])
    log(f"profiling {args.requests} requests")
    profiler = cProfile.Profile(time.thread_time)
    postgres_before = postgres_cpu(args.data_dir)
    usage_before, wall_started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    statuses: dict[int, int] = {}
    profiler.enable()
    for index in range(args.requests):
        status = one(clients[index % len(clients)])
        statuses[status] = statuses.get(status, 0) + 1
    profiler.disable()
    wall = time.perf_counter() - wall_started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    postgres = postgres_cpu(args.data_dir) - postgres_before
    process_cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    stats = pstats.Stats(profiler)
    by_family: dict[str, float] = {}
    for (path, _, _), (_, _, own_time, _, callers) in stats.stats.items():
        if path == "~" and callers:
            # A built-in (str methods, isinstance, a C extension's call) counts for the code that called it,
            # shared among its callers by the time each call site spent in it.
            shares = {caller: timing[2] for caller, timing in callers.items()}
            total = sum(shares.values()) or 1.0
            for (caller_path, _, _), share in shares.items():
                name = family(caller_path)
                by_family[name] = by_family.get(name, 0.0) + own_time * share / total
            continue
        by_family[family(path)] = by_family.get(family(path), 0.0) + own_time
    unsorted = sorted(((own_time, f"{path}:{line} {name}") for (path, line, name), (_, _, own_time, _, _)
                       in stats.stats.items() if family(path) == "other" and path != "~"), reverse=True)
    main_thread = sum(by_family.values())
    per_request = 1000 / args.requests
    result = {
        "benchmark": "tmws request profile",
        "machine": {**describe_machine(), "calibration": calibration()},
        "data": f"{args.seed} seeded memories, 50 agents in 5 namespaces; the load mix {MIX} through Django's "
                "request path in one process (no HTTP server)",
        "requests": args.requests,
        "settings": {"query_embedding_cache_size": getattr(settings, "TMWS_QUERY_CACHE_SIZE", None),
                     "distinct_queries": len(QUERIES),
                     "prepared_statements": settings.DATABASES["default"]["OPTIONS"].get("server_side_binding", False)},
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "wall_ms_per_request": round(wall * per_request, 2),
        "process_cpu_ms_per_request": round(process_cpu * per_request, 2),
        "main_thread_ms_per_request_by_family": {
            name: round(seconds * per_request, 2) for name, seconds in sorted(by_family.items(), key=lambda i: -i[1])},
        "main_thread_cpu_ms_per_request": round(main_thread * per_request, 2),
        "largest_in_other": {where: round(seconds * per_request, 3) for seconds, where in unsorted[:12]},
        "other_threads_ms_per_request (query embedding)": round(max(process_cpu - main_thread, 0.0) * per_request, 2),
        "postgres_cpu_ms_per_request": round(postgres * per_request, 2),
        "note": "cProfile's own overhead inflates the main thread's figures (roughly alike across families); the "
                "split, not the absolute numbers, is the result.",
    }
    import redis

    redis.Redis.from_url(args.redis).flushdb()
    emit(result, args.output)
    return result


if __name__ == "__main__":
    main()
