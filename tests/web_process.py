"""Start a real TMWS web process (`manage.py runserver`, threaded) on the test database, for tests across processes."""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """A libpq URL for the database the tests run against (the test_ database, not the project's)."""
    settings = connection.settings_dict
    host = settings["HOST"]
    if host.startswith("/"):
        return f"postgresql://{settings['USER']}:{settings['PASSWORD']}@/{settings['NAME']}?host={host}"
    return f"postgresql://{settings['USER']}:{settings['PASSWORD']}@{host}:{settings['PORT'] or 5432}/{settings['NAME']}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Response:
    def __init__(self, status_code: int, headers: dict, body: bytes):
        self.status_code = status_code
        self.headers = headers
        self.content = body

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self):
        return json.loads(self.content)


def request(method: str, url: str, *, json_body=None, headers: dict | None = None, timeout: float = 60) -> Response:
    """One HTTP request over a fresh connection (the standard library only)."""
    parts = urlsplit(url)
    body = None if json_body is None else json.dumps(json_body).encode()
    sent = {"Content-Type": "application/json"} if body is not None else {}
    sent.update(headers or {})
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=sent)
        answer = conn.getresponse()
        return Response(answer.status, dict(answer.getheaders()), answer.read())
    finally:
        conn.close()


class WebProcess:
    def __init__(self, url: str, log_path: Path, process: subprocess.Popen):
        self.url = url
        self.log_path = log_path
        self.process = process

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()


@contextmanager
def web_process(log_path: Path, **env_overrides: str):
    """A web server on a free loopback port; its stdout and stderr go to `log_path`. Stopped on exit."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CELERY_")}
    env.update(DEBUG="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DATABASE_URL=database_url(),
               PYTHONUNBUFFERED="1")
    env.update(env_overrides)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
            cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if request("GET", f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web process did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield WebProcess(url, log_path, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
