"""The per-agent in-flight limit against real web processes: one agent's burst, the others unaffected.

Slow requests are made real by a row lock: the test holds a lock on agent A's memory in its own
database connection, so A's PATCHes of that memory wait inside the server, each holding a slot,
until the test lets go.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import redis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from agents.models import ApiKey
from core import limits
from memories.contracts import StoreMemory
from memories.services import create_memory
from tests.web_process import Response, database_url, request, web_process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cast(make_namespace, make_agent):
    make_namespace("team")
    busy, calm = make_agent("busy-agent", "team"), make_agent("calm-agent", "team")
    memories = {handle.agent_id: create_memory(handle.agent, StoreMemory.parse({"content": f"note of {handle.agent_id}",
                                                                "namespace": "team"}))
                for handle in (busy, calm)}
    operator = get_user_model().objects.create_user("metrics-reader", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="view_metrics"))
    _, operator_key = ApiKey.issue(operator)
    return {"busy": busy, "calm": calm, "memories": memories, "operator_key": operator_key}


def bearer(handle) -> dict:
    return {"Authorization": f"Bearer {handle.key}"}


def patch(base_url: str, handle, memory, tag: str) -> Response:
    return request("PATCH", f"{base_url}/api/v2/memories/{memory.pk}", json_body={"context_tags": [tag]},
                   headers=bearer(handle))


def me(base_url: str, handle) -> Response:
    return request("GET", f"{base_url}/api/v2/agents/me", headers=bearer(handle), timeout=10)


class RowLock:
    """Hold a row lock on one memory from outside the server until released."""

    def __init__(self, memory_id):
        self.connection = psycopg.connect(database_url())
        self.connection.execute("SELECT 1 FROM memories WHERE id = %s FOR UPDATE", [memory_id])

    def waiting(self) -> int:
        with psycopg.connect(database_url(), autocommit=True) as probe:
            return probe.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()[0]

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()


def wait_for(predicate, describe, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {describe()}"
        time.sleep(0.05)


def scrape_rejections(base_url: str, operator_key: str) -> int:
    text = request("GET", f"{base_url}/metrics", headers={"Authorization": f"Bearer {operator_key}"}).text
    lines = [line for line in text.splitlines() if line.startswith("tmws_requests_rejected_in_flight_total ")]
    assert len(lines) == 1, text
    line = lines[0]
    return int(line.split()[1])


def request_log(server) -> list[dict]:
    return [json.loads(line) for line in server.log_lines() if line.startswith('{"request_id"')]


def test_a_burst_from_one_agent_gets_429s_while_another_agent_is_served(cast, tmp_path):
    # given: one web process without Redis (slots counted per process), three slots per agent
    busy, calm = cast["busy"], cast["calm"]
    with web_process(tmp_path / "web.log", TMWS_AGENT_MAX_IN_FLIGHT="3") as server:
        assert me(server.url, busy).status_code == 200  # records the agent's activity now, not inside the burst
        lock = RowLock(cast["memories"]["busy-agent"].pk)
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                # when: eight concurrent requests from the busy agent
                burst = [pool.submit(patch, server.url, busy, cast["memories"]["busy-agent"], f"burst-{n}")
                         for n in range(8)]
                wait_for(lambda: sum(f.done() for f in burst) == 5 and lock.waiting() == 3,
                         lambda: (sum(f.done() for f in burst), lock.waiting(), server.log_lines()[-5:]))
                refused = [f.result() for f in burst if f.done()]
                # meanwhile: the busy agent is refused at once, the calm agent is served, REST and MCP alike
                also_refused = me(server.url, busy)
                mcp_refused = request("POST", f"{server.url}/mcp", headers=bearer(busy), json_body={}, timeout=10)
                calm_read = me(server.url, calm)
                calm_write = patch(server.url, calm, cast["memories"]["calm-agent"], "calm")
                lock.release()
                served = [f.result() for f in burst if f.result() not in refused]
        finally:
            if not lock.connection.closed:
                lock.release()
        after = me(server.url, busy)
        rejections = scrape_rejections(server.url, cast["operator_key"])
        log = request_log(server)

    # then: five 429s in the one error shape with Retry-After; the three held requests finished
    assert [r.status_code for r in refused] == [429] * 5
    for response in refused + [also_refused, mcp_refused]:
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        error = response.json()["error"]
        assert error["code"] == "too_many_in_flight"
        assert error["message"] == "Agent busy-agent already has 3 requests in flight; retry after 1 s."
        assert error["request_id"] == response.headers["X-Request-Id"]
    assert sorted(r.status_code for r in served) == [200, 200, 200]
    assert (calm_read.status_code, calm_write.status_code) == (200, 200)
    assert calm_write.json()["context_tags"] == ["calm"]
    assert after.status_code == 200  # the slots were given back
    assert rejections == 7
    # and the server's log has one JSON line per request, the refusals included
    refused_lines = [line for line in log if line["status"] == 429]
    assert len(refused_lines) == 7
    assert {(line["agent"], line["method"], line["route"]) for line in refused_lines} == {
        ("busy-agent", "PATCH", "/api/v2/memories/{pk}"), ("busy-agent", "GET", "/api/v2/agents/me"),
        ("busy-agent", "POST", "/mcp"),
    }
    assert {line["request_id"] for line in refused_lines} == {
        r.headers["X-Request-Id"] for r in refused + [also_refused, mcp_refused]
    }


@pytest.mark.redis
def test_the_limit_holds_across_two_web_processes_with_redis(cast, tmp_path, require_redis):
    # given: two web processes sharing the slots through Redis, four slots per agent
    client = redis.Redis.from_url(require_redis)
    for key in client.scan_iter("tmws:in-flight:*"):
        client.delete(key)
    busy, calm = cast["busy"], cast["calm"]
    env = {"TMWS_AGENT_MAX_IN_FLIGHT": "4", "CELERY_BROKER_URL": require_redis}
    with web_process(tmp_path / "one.log", **env) as one, web_process(tmp_path / "two.log", **env) as two:
        assert me(one.url, busy).status_code == 200  # records the agent's activity now, not inside the burst
        lock = RowLock(cast["memories"]["busy-agent"].pk)
        try:
            with ThreadPoolExecutor(max_workers=6) as pool:
                # when: three requests of the busy agent to each process
                burst = [pool.submit(patch, server.url, busy, cast["memories"]["busy-agent"], f"burst-{n}")
                         for n, server in enumerate([one, two] * 3)]
                wait_for(lambda: sum(f.done() for f in burst) == 2 and lock.waiting() == 4,
                         lambda: (sum(f.done() for f in burst), lock.waiting()))
                refused = [f.result() for f in burst if f.done()]
                held = client.zcard(limits.SLOTS_KEY.format(agent=busy.agent.pk))
                busy_elsewhere = [me(s.url, busy)
                                  for s in (one, two)]
                calm_served = [me(s.url, calm)
                               for s in (one, two)]
                lock.release()
                served = [f.result() for f in burst if f.result() not in refused]
        finally:
            if not lock.connection.closed:
                lock.release()
        rejections = (scrape_rejections(one.url, cast["operator_key"]), scrape_rejections(two.url, cast["operator_key"]))
        after = [me(s.url, busy) for s in (one, two)]

    # then: four in flight across both processes, the rest refused; the calm agent never waited
    assert held == 4
    assert [r.status_code for r in refused] == [429, 429]
    assert all(r.headers["Retry-After"] == "1" and r.json()["error"]["code"] == "too_many_in_flight"
               for r in refused)
    assert [r.status_code for r in busy_elsewhere] == [429, 429]
    assert [r.status_code for r in calm_served] == [200, 200]
    assert sorted(r.status_code for r in served) == [200] * 4
    assert [r.status_code for r in after] == [200, 200]
    assert rejections == (4, 4)  # one shared counter
    assert client.zcard(limits.SLOTS_KEY.format(agent=busy.agent.pk)) == 0
