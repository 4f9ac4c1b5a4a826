"""The embedded PostgreSQL restarted under a running gunicorn: 503s in the error shape, then service again."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from .conftest import BASE_DIR, free_port, wait_until

BOOT_SECONDS = 240  # initdb, migrations and the model's load; a bound, not an expectation
POOL_TIMEOUT_SECONDS = 2


class Server:
    """gunicorn as `make serve` runs it, on a data folder (and embedded database) of its own."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = log_path
        self.env = {
            **{key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")},
            "TMWS_DATA_DIR": str(data_dir),
            "DEBUG": "0",
            "SECRET_KEY": "fault-test-secret-key-not-for-production-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TMWS_TORCH_THREADS": "1",
            "TMWS_DB_POOL_TIMEOUT": str(POOL_TIMEOUT_SECONDS),
        }
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True,
                              text=True, timeout=BOOT_SECONDS)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start(self) -> None:
        gunicorn = Path(sys.executable).parent / "gunicorn"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "tmws_site.wsgi:application", "--config", "python:tmws_site.gunicorn_conf",
                 "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "1", "--log-level", "info"],
                cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(lambda: self._answers("/healthz"), BOOT_SECONDS, f"gunicorn to answer\n{self.log()}", interval=0.5)

    def _answers(self, path: str) -> bool:
        assert self.process.poll() is None, self.log()
        try:
            return self.request("GET", path)[0] == 200
        except OSError:
            return False

    def request(self, method: str, path: str, key: str | None = None, body=None) -> tuple[int, str, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()

    def worker_pids(self) -> list[str]:
        pid = self.process.pid
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()

    def log(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_postgres(pgdata: Path) -> None:
    """Fast shutdown through the postmaster (it runs as another system user when started by root)."""
    pid = _postmaster_pid(pgdata)
    if pid is None or not _alive(pid):
        return
    os.kill(pid, signal.SIGINT)
    wait_until(lambda: not _alive(pid), 60, "PostgreSQL to stop")


def start_postgres(data_dir: Path) -> None:
    from tmws_site.embedded_db import embedded_database_url

    embedded_database_url(data_dir)


@pytest.fixture
def server(tmp_path):
    from memories.embeddings import warm_up

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The model's exported graph is shared instead of exported again for this data folder.
    warm_up()
    (data_dir / "models").symlink_to(Path(settings.DATA_DIR) / "models", target_is_directory=True)
    server = Server(data_dir, tmp_path / "gunicorn.log")
    try:
        server.manage("migrate", "--noinput")
        yield server
    finally:
        server.stop()
        stop_postgres(data_dir / "pgdata")


def _error(status: int, content_type: str, body: str) -> dict:
    assert status == 503, body
    assert content_type.startswith("application/json"), body
    assert "Traceback" not in body and "<html" not in body.lower()
    return json.loads(body)["error"]


@pytest.mark.slow
def test_a_database_restart_answers_503_in_the_error_shape_then_recovers_without_a_server_restart(server):
    # given: a running server with an agent and a memory
    key = json.loads(server.manage("create_agent", "restart-agent", "--namespace", "team", "--json"))["api_key"]
    server.start()
    status, _, body = server.request("POST", "/api/v2/memories", key, {"content": "Before the restart.", "namespace": "team"})
    assert status == 201, body
    memory_id = json.loads(body)["id"]
    workers = server.worker_pids()
    # when: PostgreSQL stops under it
    stop_postgres(server.data_dir / "pgdata")
    # then: reads and writes answer 503 in the error shape, promptly
    for method, path, payload in [
        ("GET", "/api/v2/memories", None),
        ("GET", f"/api/v2/memories/{memory_id}", None),
        ("POST", "/api/v2/memories", {"content": "During the outage.", "namespace": "team"}),
        ("POST", "/api/v2/memories/search", {"query": "restart"}),
    ]:
        started = time.monotonic()
        error = _error(*server.request(method, path, key, payload))
        assert error["code"] == "database_unavailable"
        assert error["message"]
        assert time.monotonic() - started < POOL_TIMEOUT_SECONDS + 5
    status, _, body = server.request("GET", "/readyz")
    assert status == 503
    # when: PostgreSQL is back
    start_postgres(server.data_dir)
    # then: the same server process answers again, and every request after that succeeds
    wait_until(lambda: server.request("GET", "/api/v2/memories", key)[0] == 200, 60, f"service again\n{server.log()}")
    for number in range(5):
        status, _, body = server.request("POST", "/api/v2/memories", key, {"content": f"After {number}.", "namespace": "team"})
        assert status == 201, body
        status, _, body = server.request("GET", f"/api/v2/memories/{memory_id}", key)
        assert status == 200, body
    status, _, body = server.request("GET", "/api/v2/memories?page_size=100", key)
    contents = sorted(item["content"] for item in json.loads(body)["results"])
    assert contents == sorted(["Before the restart."] + [f"After {number}." for number in range(5)])
    assert server.worker_pids() == workers
    assert server.process.poll() is None
