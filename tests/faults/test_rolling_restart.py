"""Several nodes on loopback under load: rolling restarts of every process, then a database restart.

Two web processes (two gunicorn masters, as two machines' `make serve` would run them), two Celery
workers (the first with the beat, as `make worker` on one machine and `TMWS_WORKER_BEAT=0` on the
other), a Redis of the test's own and a PostgreSQL of its own (an embedded server in a data folder of
the test's, reached by every process through DATABASE_URL as a database machine would be). Agents
store, search, get and list from threads, each request on a fresh connection to one of the two web
processes in turn, each answer recorded.

While they do: SIGHUP to each gunicorn master in turn (it starts a new worker, then lets the old one
finish its requests), SIGTERM to each Celery worker in turn (warm shutdown: the running task
finishes, unstarted messages go back to Redis) and a fresh start of it. Then PostgreSQL stops and
starts again under the same load.

What must hold: during the restarts every request answers 2xx. No 429 is allowed either: each agent
has one request in flight at a time, under any per-agent limit, so a 429 could only come from a slot
leaked by a restarted process. During the database outage a request may answer 503 in the error
shape (`database_unavailable`), nothing else (no other 5xx, no reset or refused connection). Every
memory answered 201 exists afterwards, is embedded, and was embedded once (`embedding_attempts` is
1: each embedding of a row adds one).
"""
from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from memories.models import Memory
from memories.tasks import EMBEDDING_TASK_SIZE

from .conftest import BASE_DIR, RedisServer, free_port, wait_until
from .test_database_restart import start_postgres, stop_postgres

AGENTS = 8
PAUSE_SECONDS = 0.25  # between one agent's requests: a steady load the two shared cores can carry
BOOT_SECONDS = 180  # bounds on waits, not expectations
SETTLE_SECONDS = 120
REQUEST_TIMEOUT_SECONDS = 60
POOL_TIMEOUT_SECONDS = 2
OUTAGE_SECONDS = 4
NAMESPACE = "rolling-team"
MIX = {"search": 4, "create": 2, "get": 2, "list": 2}  # bench/load_http.py's mix
QUERIES = ["deploy checklist", "database migration", "on-call handover", "release notes", "incident review"]

CREATE_AGENTS = f"""
import json
from access import SYSTEM
from agents.contracts import RegisterAgent
from agents.services import register_agent
from namespaces.contracts import CreateNamespace
from namespaces.services import create_namespace
create_namespace(SYSTEM, CreateNamespace.parse({{"namespace": "{NAMESPACE}", "access_policy": "invite_only"}}))
keys = [register_agent(SYSTEM, RegisterAgent.parse({{"agent_id": f"rolling-agent-{{n}}", "namespace": "{NAMESPACE}"}}))[1]
        for n in range({AGENTS})]
print("KEYS " + json.dumps(keys))
"""


class Cluster:
    """The processes of the deployment, each logging to a file of its own; stops what is left at the end."""

    def __init__(self, tmp_path: Path, database_url: str, broker_url: str):
        self.tmp_path = tmp_path
        self.env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "CELERY_"))},
            # The environment of docs/operators.md, "Several machines", with loopback addresses.
            "DEBUG": "0",
            "SECRET_KEY": "rolling-restart-test-secret-key-not-for-production-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "TMWS_DATA_DIR": str(tmp_path / "data"),  # the model files only: the database is DATABASE_URL's
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TMWS_TORCH_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "TMWS_DB_POOL_TIMEOUT": str(POOL_TIMEOUT_SECONDS),
            # Recovery made quick through settings, not by waiting out the defaults.
            "TMWS_EMBEDDING_SWEEP_SECONDS": "2",
            "TMWS_EMBEDDING_DRAIN_TTL_SECONDS": "3",
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True,
                              text=True, timeout=BOOT_SECONDS)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        with open(self.tmp_path / f"{name}.log", "a") as log:
            process = subprocess.Popen(command, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def start_web(self, name: str) -> None:
        """gunicorn as `make serve` runs it (TMWS_WEB_WORKERS=1): one synchronous worker."""
        self.ports[name] = free_port()
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self._spawn(name, [str(gunicorn), "tmws_site.wsgi:application", "--config", "python:tmws_site.gunicorn_conf",
                           "--bind", f"127.0.0.1:{self.ports[name]}", "--workers", "1", "--threads", "1",
                           "--log-level", "info"])

    def start_worker(self, name: str, *, beat: bool = False) -> None:
        """A worker as `make worker` runs it (one worker process here), with the beat on one of them only."""
        command = [sys.executable, "-m", "celery", "-A", "tmws_site", "worker", "--loglevel=INFO", "--concurrency=1",
                   "-n", f"{name}@%h"]
        if beat:
            command += ["--beat", "-s", str(self.tmp_path / f"{name}-beat-schedule")]
        self._spawn(name, command)

    def log(self, name: str) -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)[-3000:]}" for name in self.processes)

    def web_worker_pids(self, name: str) -> list[str]:
        pid = self.processes[name].pid
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()

    def web_ready(self, name: str) -> bool:
        assert self.processes[name].poll() is None, self.logs()
        try:
            return get_status(self.ports[name], "/healthz") == 200
        except OSError:
            return False

    def worker_ready(self, name: str, times: int) -> bool:
        assert self.processes[name].poll() is None, self.logs()
        return sum(f"{name}@" in line and line.rstrip().endswith(" ready.")
                   for line in self.log(name).splitlines()) >= times

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def get_status(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


class Load:
    """AGENTS threads, each drawing from MIX and sending to the web processes in turn; every answer recorded."""

    def __init__(self, keys: list[str], ports: list[int]):
        self.keys = keys
        self.ports = ports
        self.phase = "start"
        self.answers: list[tuple[str, str, str, str]] = []  # (phase, operation, status or error name, error code)
        self.created: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._agent, args=(number, key), daemon=True)
                         for number, key in enumerate(keys)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_SECONDS + 5)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def bulk_store(self, count: int) -> None:
        """One bulk write (as the first agent, to the first web process); its memories count as acknowledged."""
        items = [{"content": f"Bulk note {number} about the {QUERIES[number % len(QUERIES)]}.", "namespace": NAMESPACE}
                 for number in range(count)]
        status, code, body = self._call(self.ports[0], self.keys[0], "POST", "/api/v2/memories/bulk", {"memories": items})
        assert status == "201", (status, code, body)
        with self._lock:
            self.created.extend(json.loads(body)["ids"])

    def _agent(self, number: int, key: str) -> None:
        rng = random.Random(number)
        mine: list[str] = []
        turn = number
        while not self._stop.is_set():
            operation = rng.choices(list(MIX), list(MIX.values()))[0] if mine else "create"
            if operation == "search":
                call = ("POST", "/api/v2/memories/search", {"query": rng.choice(QUERIES), "limit": 10})
            elif operation == "create":
                call = ("POST", "/api/v2/memories", {
                    "content": f"Note {len(mine)} of agent {number}: {rng.choice(QUERIES)} on host {rng.randrange(100)}.",
                    "namespace": NAMESPACE, "access_level": rng.choice(["private", "shared"])})
            elif operation == "get":
                call = ("GET", f"/api/v2/memories/{rng.choice(mine)}", None)
            else:
                call = ("GET", "/api/v2/memories?page_size=20", None)
            started = self.phase
            status, code, body = self._call(self.ports[turn % len(self.ports)], key, *call)
            turn += 1
            # A request the outage overtook counts as one of the outage's.
            phase = "database" if "database" in (started, self.phase) else started
            with self._lock:
                self.answers.append((phase, operation, status, code))
                if operation == "create" and status == "201":
                    memory_id = json.loads(body)["id"]
                    mine.append(memory_id)
                    self.created.append(memory_id)
            self._stop.wait(PAUSE_SECONDS)

    @staticmethod
    def _call(port: int, key: str, method: str, path: str, body) -> tuple[str, str, str]:
        """(status, error code of the error shape or '', body); a connection error gives its exception's name."""
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_SECONDS)
        headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__, "", ""
        finally:
            connection.close()
        code = ""
        if response.status >= 400:
            try:
                code = json.loads(text)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "not-the-error-shape"
        return str(response.status), code, text


@pytest.fixture
def deployment(tmp_path):
    """A database and Redis of the test's own, agents with keys, and the processes (not yet started)."""
    from memories.embeddings import warm_up
    from tmws_site.embedded_db import embedded_database_url

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The model's exported graph is shared instead of exported again for this data folder.
    warm_up()
    (data_dir / "models").symlink_to(Path(settings.DATA_DIR) / "models", target_is_directory=True)
    database_url = embedded_database_url(data_dir)
    redis_server = RedisServer(tmp_path / "redis.log")
    cluster = Cluster(tmp_path, database_url, "")
    try:
        redis_server.start()
        cluster.env["CELERY_BROKER_URL"] = redis_server.url
        cluster.manage("migrate", "--noinput")
        keys = json.loads(cluster.manage("shell", "-c", CREATE_AGENTS).split("KEYS ", 1)[1])
        yield cluster, keys, data_dir
    finally:
        cluster.stop_all()
        redis_server.stop()
        stop_postgres(data_dir / "pgdata")


def rows(database_url: str, ids: list[str]) -> dict[str, tuple[str, int]]:
    with psycopg.connect(database_url) as connection:
        found = connection.execute(
            f"SELECT id::text, embedding_status, embedding_attempts FROM {Memory._meta.db_table} WHERE id = ANY(%s::uuid[])",
            [ids],
        ).fetchall()
    return {memory_id: (status, attempts) for memory_id, status, attempts in found}


def reload_web(cluster: Cluster, name: str) -> None:
    """SIGHUP: gunicorn starts a new worker, then stops the old one once its request is done."""
    old = cluster.web_worker_pids(name)
    cluster.processes[name].send_signal(signal.SIGHUP)
    wait_until(lambda: (pids := cluster.web_worker_pids(name)) and not set(pids) & set(old) and cluster.web_ready(name),
               BOOT_SECONDS, f"{name}'s new worker to serve\n{cluster.logs()}", interval=0.2)


def embedding_tasks(cluster: Cluster, name: str, event: str) -> int:
    """How many `embed_memories` tasks the worker's log says it has `received` (or `succeeded` in) so far."""
    return sum(line.split("] ", 1)[-1].startswith("Task memories.tasks.embed_memories[") and f"] {event}" in line
               for line in cluster.log(name).splitlines())


def restart_worker(cluster: Cluster, load: Load, name: str, *, beat: bool = False) -> None:
    """SIGTERM (warm shutdown: the running task ends first) while it embeds a bulk write; wait for the exit, start it again.

    A bulk write of two embedding tasks keeps both workers busy for a while: the signal comes once this
    worker has received one of them, so its shutdown has a task to finish (or to hand back, unstarted).
    """
    process = cluster.processes[name]
    received = embedding_tasks(cluster, name, "received")
    for _ in range(3):  # the other worker may have taken both tasks: another bulk write then
        load.bulk_store(EMBEDDING_TASK_SIZE + EMBEDDING_TASK_SIZE // 2)
        try:
            wait_until(lambda: embedding_tasks(cluster, name, "received") > received, 20,
                       f"{name} to receive an embedding task", interval=0.05)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"{name} received none of three bulk writes' embedding tasks\n{cluster.logs()}")
    # Into the task: a shutdown that began while the pool process was being handed the task was seen
    # to take about 30 s longer (docs/operators.md, "Rolling restart"); this test is about what it keeps.
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=SETTLE_SECONDS) == 0, cluster.log(name)
    # the warm shutdown finished what it had started (a task handed back unstarted goes to the other worker)
    assert embedding_tasks(cluster, name, "succeeded") >= embedding_tasks(cluster, name, "received") - 1, cluster.log(name)
    cluster.start_worker(name, beat=beat)
    wait_until(lambda: cluster.worker_ready(name, 2), BOOT_SECONDS, f"{name} to be ready again\n{cluster.logs()}")


def keep_loading(load: Load, requests: int, step: str) -> None:
    """Let at least `requests` more answers come in under the current state; print the step's time."""
    target = load.count() + requests
    wait_until(lambda: load.count() >= target, BOOT_SECONDS, "the load to go on")
    print(f"{time.monotonic() - STARTED[0]:6.1f}s {step}")


STARTED = [time.monotonic()]


@pytest.mark.slow
def test_rolling_restarts_and_a_database_restart_under_load_fail_no_request_and_lose_no_write(deployment):
    cluster, keys, data_dir = deployment
    STARTED[0] = time.monotonic()
    # given: two web processes, two workers (one with the beat), all ready
    for name in ("web-1", "web-2"):
        cluster.start_web(name)
    cluster.start_worker("worker-1", beat=True)
    cluster.start_worker("worker-2")
    for name in ("web-1", "web-2"):
        wait_until(lambda name=name: cluster.web_ready(name), BOOT_SECONDS, f"{name} to serve\n{cluster.logs()}", 0.5)
    for name in ("worker-1", "worker-2"):
        wait_until(lambda name=name: cluster.worker_ready(name, 1), BOOT_SECONDS, f"{name} to be ready\n{cluster.logs()}")
    load = Load(keys, [cluster.ports["web-1"], cluster.ports["web-2"]])
    load.start()
    try:
        keep_loading(load, 10, "load running")
        # when: each process is restarted in turn under the load
        load.phase = "rolling"
        reload_web(cluster, "web-1")
        keep_loading(load, 10, "web-1 reloaded")
        reload_web(cluster, "web-2")
        keep_loading(load, 10, "web-2 reloaded")
        restart_worker(cluster, load, "worker-1", beat=True)
        keep_loading(load, 10, "worker-1 restarted")
        restart_worker(cluster, load, "worker-2")
        keep_loading(load, 20, "worker-2 restarted")
        # and: the database stops and comes back
        load.phase = "database"
        stop_postgres(data_dir / "pgdata")
        outage_started = load.count()
        time.sleep(OUTAGE_SECONDS)
        outage_answers = load.count() - outage_started
        start_postgres(data_dir)
        wait_until(lambda: any(answer[0] == "database" and answer[2] == "201" for answer in load.answers[outage_started:]),
                   BOOT_SECONDS, "writes to succeed again")
        load.phase = "after"
        keep_loading(load, 10, "database back")
        wait_until(lambda: ("after", "create", "201", "") in load.answers, BOOT_SECONDS, "a write after the outage")
    finally:
        load.stop()

    answers = Counter((phase, status, code) for phase, _, status, code in load.answers)
    # then: nothing failed during the rolling restarts, before or after them
    failed = {(phase, status) for phase, status, _ in answers if phase != "database" and not status.startswith("2")}
    assert failed == set(), answers
    assert answers[("rolling", "201", "")] > 0 and answers[("after", "201", "")] > 0, answers
    # during the database outage: successes, or 503 `database_unavailable`, nothing else; and there were 503s
    assert {(status, code) for phase, status, code in answers if phase == "database" and not status.startswith("2")} \
        == {("503", "database_unavailable")}, answers
    assert outage_answers > 0
    # every acknowledged write exists, is embedded, and was embedded once
    created = list(load.created)
    assert len(set(created)) == len(created)
    embedded = lambda: Counter(status for status, _ in rows(cluster.env["DATABASE_URL"], created).values())  # noqa: E731
    deadline = time.monotonic() + SETTLE_SECONDS
    while embedded() != {"ready": len(created)} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert embedded() == {"ready": len(created)}, cluster.logs()
    found = rows(cluster.env["DATABASE_URL"], created)
    assert set(found) == set(created)
    assert Counter(attempts for _, attempts in found.values()) == {1: len(created)}
    # and no web worker was killed for taking too long
    for name in ("web-1", "web-2"):
        assert "WORKER TIMEOUT" not in cluster.log(name)
