"""`make run`'s server (gunicorn, one process of threads, no broker) under a burst from one agent, and its embedder.

The burst is made of PATCHes of one memory that the test holds locked from its own database connection:
the requests that get a slot wait inside the server until the test lets go, so which answers are 200
and which 429 follows from the limit, not from how fast the machine is.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from memories.contracts import StoreMemory
from memories.services import create_memory
from tests.site.test_in_flight_limit import RowLock, bearer, patch, wait_for
from tests.web_process import request, web_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BURST = 100


def outcome(call) -> str:
    """The status, or the name of the connection error (a reset, a refused connection)."""
    try:
        return str(call().status_code)
    except OSError as exc:
        return type(exc).__name__


def test_a_burst_of_100_from_one_agent_gets_only_200_and_429_and_the_embedder_runs(make_namespace, make_agent, tmp_path):
    # given: make run's server, with its default limit of five requests in flight per agent
    make_namespace("team")
    agent = make_agent("bursty-agent", "team")
    memory = create_memory(agent.agent, StoreMemory.parse({"content": "the deploy checklist", "namespace": "team"}))
    with web_process(tmp_path / "run.log", make_run=True) as server:
        assert request("GET", f"{server.url}/api/v2/agents/me", headers=bearer(agent)).status_code == 200
        lock = RowLock(memory.pk)
        try:
            with ThreadPoolExecutor(max_workers=BURST) as pool:
                # when: 100 concurrent requests, each on a connection of its own
                burst = [pool.submit(outcome, lambda n=n: patch(server.url, agent, memory, f"burst-{n}"))
                         for n in range(BURST)]
                wait_for(lambda: sum(f.done() for f in burst) == BURST - 5 and lock.waiting() == 5,
                         lambda: (sum(f.done() for f in burst), lock.waiting(), server.log_lines()[-5:]))
                lock.release()
                answers = Counter(f.result() for f in burst)
        finally:
            if not lock.connection.closed:
                lock.release()
        # and: a memory written through it
        created = request("POST", f"{server.url}/api/v2/memories", headers=bearer(agent),
                          json_body={"content": "Staging deploys need the team lead's approval.", "namespace": "team"})
        read = lambda: request("GET", f"{server.url}/api/v2/memories/{created.json()['id']}", headers=bearer(agent))  # noqa: E731
        wait_for(lambda: read().json()["embedding_status"] != "pending", lambda: read().json())
        embedded = read().json()["embedding_status"]
        exit_status = server.interrupt()
        log = server.log_path.read_text()

    # then: five served, the other 95 refused at once, no connection reset or refused
    assert answers == {"200": 5, "429": 95}
    # the web process's background thread embedded the new memory (no broker, no request waiting for it)
    assert (created.status_code, created.json()["embedding_status"], embedded) == (201, "pending", "ready")
    # and Ctrl-C stops it cleanly
    assert exit_status == 0
    assert "Traceback" not in log
    assert "Shutting down: Master" in log
