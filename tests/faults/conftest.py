"""Real processes for the fault tests: a Redis server of the test's own, Celery workers, a beat.

Every process is started and stopped by the test that needs it; nothing here touches the shared
Redis or the test database's server.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import kombu.pools
import pytest
import redis
from django.db import connection

from memories.models import Memory
from tests.site.test_celery_worker import database_url
from tmws_site.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parents[2]
# Bounds on waits, not performance expectations.
START_SECONDS = 30
SETTLE_SECONDS = 240
# Recovery is made quick through settings, not by waiting out the defaults.
SWEEP_SECONDS = 1
DRAIN_TTL_SECONDS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    """A redis-server on a free port that keeps nothing on disk; stopped and started again on the same port."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        wait_until(lambda: self._pings(client), START_SECONDS, "redis-server to answer")

    @staticmethod
    def _pings(client) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def private_redis(settings, tmp_path):
    """The test's own Redis as the broker of this process (in-process Celery conf included)."""
    server = RedisServer(tmp_path / "redis.log")
    server.start()
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    settings.CELERY_BROKER_URL = server.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.update(broker_url=server.url, task_always_eager=False)
    _drop_cached_connections()
    try:
        yield server
    finally:
        celery_app.conf.update(saved)
        _drop_cached_connections()
        server.stop()


def _drop_cached_connections() -> None:
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


class Workers:
    """Starts Celery workers on the test database and the private broker; stops what is left at the end."""

    def __init__(self, broker_url: str, tmp_path: Path):
        self.broker_url = broker_url
        self.tmp_path = tmp_path
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, *, beat: bool = False) -> tuple[subprocess.Popen, Path]:
        env = {
            **os.environ,
            "DEBUG": "1",
            "DATABASE_URL": database_url(connection.settings_dict),
            "CELERY_BROKER_URL": self.broker_url,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TMWS_TORCH_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "TMWS_EMBEDDING_SWEEP_SECONDS": str(SWEEP_SECONDS),
            "TMWS_EMBEDDING_DRAIN_TTL_SECONDS": str(DRAIN_TTL_SECONDS),
            # Claims of one model batch: a backlog takes several, so a worker can die between two.
            "TMWS_EMBEDDING_CLAIM_SIZE": "32",
        }
        log_path = self.tmp_path / f"{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "tmws_site", "worker", "--pool=solo", "--loglevel=INFO",
                   "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        if beat:
            command += ["--beat", "-s", str(self.tmp_path / f"{name}-beat-schedule")]
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started.append((process, log_path))
        return process, log_path

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()[-4000:]}" for _, path in self.started)

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def workers(private_redis, transactional_db, tmp_path):
    started = Workers(private_redis.url, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def statuses(ids) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in Memory.objects.filter(pk__in=ids).values_list("embedding_status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def attempts(ids) -> list[int]:
    return sorted(set(Memory.objects.filter(pk__in=ids).values_list("embedding_attempts", flat=True)))
