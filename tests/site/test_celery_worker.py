"""A real Celery worker, on the local Redis, embeds a memory created through the API."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import kombu.pools
import pytest
import redis
from django.db import connection

from memories.tasks import EMBEDDING_DRAIN_KEY
from tmws_site.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parents[2]
READY_WAIT_SECONDS = 180  # a bound on the wait, not a performance expectation


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database this test process is using (the test database)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if user or password else ""
    host, port = settings_dict.get("HOST") or "", settings_dict.get("PORT") or ""
    query = {k: v for k, v in (settings_dict.get("OPTIONS") or {}).items() if isinstance(v, str)}
    if host.startswith("/"):
        query["host"] = host
        netloc = auth
    else:
        netloc = f"{auth}{host}{':' + port if port else ''}"
    suffix = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{netloc}/{quote(settings_dict['NAME'], safe='')}{suffix}"


@pytest.fixture
def broker(require_redis, settings):
    """Send tasks to Redis, on a queue of this test's own, instead of running them in-process."""
    queue = f"tmws-test-{uuid.uuid4().hex[:12]}"
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager", "task_default_queue")}
    settings.CELERY_BROKER_URL = require_redis
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.update(broker_url=require_redis, task_always_eager=False, task_default_queue=queue)
    _drop_cached_connections()
    client = redis.Redis.from_url(require_redis)
    client.delete(EMBEDDING_DRAIN_KEY)  # a flag left by another test would hold back this test's drain
    yield require_redis, queue
    celery_app.conf.update(saved)
    _drop_cached_connections()
    # kombu keeps the queue's exchange binding under one of two names, by version
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}", EMBEDDING_DRAIN_KEY)


def _drop_cached_connections() -> None:
    # The app caches its broker pool and queue routing, and kombu keeps a process-wide registry of
    # pools per broker URL: close and forget both so they are rebuilt from the changed conf.
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


@pytest.fixture
def worker(broker, transactional_db, tmp_path):
    broker_url, queue = broker
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker_url,
        "TMWS_CELERY_QUEUE": queue,  # what the worker sends itself stays on this test's queue
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tmws_site", "worker", "--pool=solo", "--loglevel=INFO",
             "-Q", queue, "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield process, log_path
    finally:
        process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task, then exit
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.redis
@pytest.mark.slow
def test_a_worker_embeds_a_memory_created_through_the_api(worker, make_namespace, make_agent):
    # given
    process, log_path = worker
    make_namespace("team")
    handle = make_agent("worker-test-agent", "team")
    # when
    response = handle.client.post(
        "/api/v2/memories", {"content": "The worker embeds this memory.", "namespace": "team"}, format="json"
    )
    # then: answered at once, embedded later by the worker process
    assert response.status_code == 201, response.content
    assert response.json()["embedding_status"] == "pending"
    memory_id = response.json()["id"]
    status = "pending"
    deadline = time.monotonic() + READY_WAIT_SECONDS
    while status == "pending" and time.monotonic() < deadline:
        assert process.poll() is None, f"worker exited early:\n{log_path.read_text()}"
        time.sleep(0.5)
        status = handle.client.get(f"/api/v2/memories/{memory_id}").json()["embedding_status"]
    assert status == "ready", f"memory still {status}; worker log:\n{log_path.read_text()}"
    assert "embedded': 1" in log_path.read_text()


def test_database_url_round_trips_through_the_settings_parser():
    # given
    from tmws_site.embedded_db import parse_database_url

    tcp = {"NAME": "test_tmws", "USER": "app@corp", "PASSWORD": "p:w/d", "HOST": "db.example.com", "PORT": "5433",
           "OPTIONS": {"sslmode": "require", "pool": {"max_size": 4}}}
    socket = {"NAME": "test_tmws", "USER": "postgres", "PASSWORD": "", "HOST": "/tmp/data/pgdata", "PORT": "",
              "OPTIONS": {}}
    # when / then
    for settings_dict in (tcp, socket):
        parsed = parse_database_url(database_url(settings_dict))
        assert (parsed["NAME"], parsed["USER"], parsed["PASSWORD"], parsed["HOST"], parsed["PORT"]) == (
            settings_dict["NAME"], settings_dict["USER"], settings_dict["PASSWORD"], settings_dict["HOST"],
            settings_dict["PORT"],
        )
