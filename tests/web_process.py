"""Start a real TMWS web process on the test database, for tests across processes.

By default `manage.py runserver` (threaded); with `make_run=True` gunicorn exactly as `make run` starts it
(its settings in tmws_site/gunicorn_conf.py, the address in TMWS_BIND), in a process group of its own so a
test can stop it as Ctrl-C does.
"""
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

    def interrupt(self) -> int:
        """Stop it as Ctrl-C in its terminal does (SIGINT to its whole process group); returns the exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=60)


# The command `make run` ends with (the Makefile's `run` target).
MAKE_RUN_COMMAND = [str(Path(sys.executable).parent / "gunicorn"), "tmws_site.wsgi:application",
                    "--config", "python:tmws_site.gunicorn_conf"]


@contextmanager
def web_process(log_path: Path, *, make_run: bool = False, **env_overrides: str):
    """A web server on a free loopback port; its stdout and stderr go to `log_path`. Stopped on exit."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CELERY_")}
    env.update(DEBUG="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DATABASE_URL=database_url(),
               PYTHONUNBUFFERED="1", TMWS_BIND=f"127.0.0.1:{port}")
    env.update(env_overrides)
    if make_run:
        command = MAKE_RUN_COMMAND
    else:
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=make_run)
    url = f"http://127.0.0.1:{port}"
    try:
        # gunicorn answers once its worker has loaded the embedding model
        deadline = time.monotonic() + 120
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
