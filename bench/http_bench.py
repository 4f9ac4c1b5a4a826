"""HTTP figures through the production web server (gunicorn) and Celery workers on a Redis broker."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from bench import corpus

ROOT = Path(__file__).resolve().parent.parent
INGEST_TAG = "bench-ingest"
# Two worker processes with one model thread each: embedding in one overlaps the other's database writes.
WORKER_PROCESSES = 2
# Synchronous gunicorn workers, as `make serve` runs them (requests on each process's main thread); one
# process, since the client sends one request at a time.
WEB_PROCESSES = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def services(data_dir: str, broker: str, log, *, web_processes: int = WEB_PROCESSES, web_threads: int = 1,
             worker_processes: int = WORKER_PROCESSES):
    """A gunicorn server and (with a broker) Celery workers, all stopped on exit."""
    port = free_port()
    env = {
        **os.environ,
        "TMWS_DATA_DIR": data_dir,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "TMWS_THROTTLE_RATE": "",
        "PYTHONPATH": str(ROOT),
    }
    if broker:
        env["CELERY_BROKER_URL"] = broker
    else:
        env.pop("CELERY_BROKER_URL", None)
    bin_dir = Path(sys.executable).parent
    processes = []
    logs = Path(data_dir) / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        processes.append(subprocess.Popen(
            [str(bin_dir / "gunicorn"), "tmws_site.wsgi:application", "--config", "python:tmws_site.gunicorn_conf",
             "--bind", f"127.0.0.1:{port}",
             "--workers", str(web_processes), "--threads", str(web_threads), "--log-level", "warning",
             "--keep-alive", "600"],
            cwd=ROOT, env=env, stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        ))
        if broker:
            processes.append(subprocess.Popen(
                [str(bin_dir / "celery"), "-A", "tmws_site", "worker", f"--concurrency={worker_processes}",
                 "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=dict(env, TMWS_TORCH_THREADS="1"), stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT,
                start_new_session=True,
            ))
        wait_http(port)
        log(f"server on port {port}{' with a Celery worker on ' + broker if broker else ''}")
        yield port
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def wait_http(port: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the server did not answer on port {port}")


class Client:
    def __init__(self, port: int, key: str):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(self, path: str, body) -> tuple[float, int, dict]:
        payload = json.dumps(body)
        started = time.perf_counter()
        self.connection.request("POST", path, body=payload, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        return elapsed, response.status, json.loads(data or b"{}")


def _wait_embedded(ids, timeout: float, log) -> float:
    """Wait until the benchmark's memories are all embedded; returns when that was seen.

    The poll asks only whether a pending benchmark row is left (the status index finds the few
    pending rows), so the waiting client takes next to no CPU from the work it measures.
    """
    from memories.models import Memory

    started = time.perf_counter()
    waiting = Memory.objects.pending_embedding().filter(context_tags__contains=[INGEST_TAG])
    while waiting.exists():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{waiting.count()} memories still not embedded after {timeout}s")
        time.sleep(0.1)
    finished = time.perf_counter()
    not_ready = Memory.objects.filter(pk__in=ids).exclude(embedding_status="ready").count()
    if not_ready:
        raise RuntimeError(f"{not_ready} benchmark memories failed to embed")
    return finished


def run(fixture, args, log) -> dict:
    from agents.services import rotate_key
    from bench.figures import timing
    from memories.models import Memory

    Memory.objects.filter(context_tags__contains=[INGEST_TAG]).delete()
    agent = fixture.agents[0]
    operator = _operator()
    key = rotate_key(operator, agent)
    # Each mode gets questions of its own: a question asked before would come from the query-embedding cache.
    queries = corpus.query_texts(10 + 3 * args.queries, seed=1234)
    result = {"server": f"gunicorn ({WEB_PROCESSES} sync workers), DEBUG off, agent requests under row-level security"}
    with services(args.data_dir, args.redis, log) as port:
        client = Client(port, key)
        for text in queries[:10]:
            client.post("/api/v2/memories/search", {"query": text})
        for number, mode in enumerate(("hybrid", "semantic", "keyword")):
            times, server = [], []
            for text in queries[10 + number * args.queries : 10 + (number + 1) * args.queries]:
                elapsed, status, body = client.post("/api/v2/memories/search", {"query": text, "mode": mode})
                assert status == 200, body
                times.append(elapsed)
                server.append(body["took_ms"])
            result[f"search_{mode}"] = {**timing(times), "server_took_p50_ms": timing(server)["p50_ms"]}
            log(f"http search {mode}: {result[f'search_{mode}']}")
        if args.redis:
            result["broker"] = args.redis.rsplit("@", 1)[-1]
            result.update(_writes(client, args, log))
    Memory.objects.filter(context_tags__contains=[INGEST_TAG]).delete()
    return result


def _writes(client, args, log) -> dict:
    from bench.figures import timing

    rows = corpus.build_rows(args.ingest + 200, seed=4321)
    namespace = "bench-00"
    times, created = [], []
    for row in rows[:200]:
        elapsed, status, body = client.post("/api/v2/memories", {
            "content": row.content, "namespace": namespace, "access_level": "private",
            "context_tags": [INGEST_TAG],
        })
        assert status == 201, body
        times.append(elapsed)
        created.append(body["id"])
    _wait_embedded(created, 600, log)
    create = {
        **timing(times[20:]),
        "note": "embedding runs in the Celery workers (Redis broker; one drain at a time takes single creates), "
        "not in the request",
    }
    log(f"create: {create}")
    items = [
        {"content": row.content, "namespace": namespace, "access_level": "shared", "context_tags": [INGEST_TAG]}
        for row in rows[200:]
    ]
    started = time.perf_counter()
    ids = []
    for start in range(0, len(items), 1000):
        elapsed, status, body = client.post("/api/v2/memories/bulk", {"memories": items[start : start + 1000]})
        assert status == 201, body
        ids.extend(body["ids"])
    stored = time.perf_counter()
    finished = _wait_embedded(ids, 1800, log)
    ingest = {
        "memories": len(ids),
        "memories_per_s": round(len(ids) / (finished - started), 1),
        "store_only_per_s": round(len(ids) / (stored - started), 1),
        "note": f"POST /memories/bulk x1000 until every embedding is ready; "
        f"{WORKER_PROCESSES} worker processes, one model thread each",
    }
    log(f"bulk ingest: {ingest}")
    return {"create": create, "bulk_ingest": ingest}


def _operator():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    return user
