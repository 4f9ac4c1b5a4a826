"""Exact query counts of every list of API v2: the same fixed number for a few rows and for more.

Each test lists a few rows, adds more, and lists again under the same exact count, so an N+1
(the count grows with the rows) and a new constant query both fail here.

What an agent's GET /api/v2/agents costs, for example (7; the other lists differ in their own reads):
  1  SAVEPOINT: the request's transaction (ATOMIC_REQUESTS), nested in the test's own transaction;
  2  the API key, with its user, agent and home namespace (authentication);
  3  set_config('role', 'tmws_agent') and set_config('app.current_agent_id'): row-level security on;
  4  COUNT(*) for the page's `count` (every agent may list every agent);
  5  the page of agents, with their home namespaces joined;
  6  set_config back to the connection's own role and no agent, before the response is written;
  7  RELEASE SAVEPOINT: the request's transaction commits.
Lists filtered by the caller's namespaces add one query for its readable namespaces and shares,
computed once per request (access.request_scope).
"""
from __future__ import annotations

import pytest

from tests.query_rows import STEPS, add_memories, add_runs, add_tasks, add_workflows
from workflows import workflow_services
from workflows.definitions import CreateWorkflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def listing(counted):
    """GET a list under an exact query count; answer how many rows it listed."""
    return lambda client, url, queries: counted(client, url, queries)["count"]


@pytest.fixture
def searching(counted):
    """POST a search under an exact query count; answer how many memories it found."""
    return lambda client, body, queries: counted(client, "/api/v2/memories/search", queries, body)["count"]


@pytest.fixture
def owner(team):
    """The owner agent, after its first request (which also records the key's activity, once a minute)."""
    handle = team["owner"]
    assert handle.client.get("/api/v2/agents/me").status_code == 200
    return handle


def test_agent_list(owner, make_agent, listing):
    # given: the eight agents of the cast
    assert listing(owner.client, "/api/v2/agents", queries=QUERIES["agents"]) == 8
    # when: five more, in several namespaces
    for index, namespace in enumerate(["team", "team", "squad", "other", "company"]):
        make_agent(f"extra-{index}", namespace, capabilities={"python": True})
    # then
    assert listing(owner.client, "/api/v2/agents", queries=QUERIES["agents"]) == 13


def test_namespace_list(owner, make_namespace, listing):
    # given: the owner's team and its ancestor company
    assert listing(owner.client, "/api/v2/namespaces", queries=QUERIES["namespaces"]) == 2
    # when: open namespaces (visible to every agent), each with an open child
    for index in range(3):
        make_namespace(f"open-{index}", policy="open")
        make_namespace(f"open-{index}-child", parent=f"open-{index}", policy="open")
    # then
    assert listing(owner.client, "/api/v2/namespaces", queries=QUERIES["namespaces"]) == 8


def test_memory_list(owner, team, listing):
    # given
    add_memories(team, 3)
    assert listing(owner.client, "/api/v2/memories", queries=QUERIES["memories"]) == 3
    # when
    add_memories(team, 5)
    # then
    assert listing(owner.client, "/api/v2/memories", queries=QUERIES["memories"]) == 8


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_memory_search(owner, team, searching, mode):
    # given: only keyword hits (embeddings are computed on commit, which these tests do not reach)
    add_memories(team, 3)
    body = {"query": "harbour note", "mode": mode, "limit": 50}
    assert searching(owner.client, body, queries=QUERIES[f"search-{mode}"]) == 3
    # when
    add_memories(team, 5)
    # then
    assert searching(owner.client, body, queries=QUERIES[f"search-{mode}"]) == 8


def test_task_list(owner, team, listing):
    # given
    add_tasks(team, 3)
    assert listing(owner.client, "/api/v2/tasks", queries=QUERIES["tasks"]) == 3
    # when
    add_tasks(team, 5)
    # then
    assert listing(owner.client, "/api/v2/tasks", queries=QUERIES["tasks"]) == 8


def test_workflow_list(owner, team, listing):
    # given
    add_workflows(team, 3)
    assert listing(owner.client, "/api/v2/workflows", queries=QUERIES["workflows"]) == 3
    # when
    add_workflows(team, 5)
    # then
    assert listing(owner.client, "/api/v2/workflows", queries=QUERIES["workflows"]) == 8


def test_workflow_run_list(owner, team, listing):
    # given
    workflow = workflow_services.create_workflow(
        owner.agent, CreateWorkflow.parse({"name": "Nightly", "steps": STEPS, "namespace": "team"}))
    url = f"/api/v2/workflows/{workflow.pk}/runs"
    add_runs(workflow, team, 3)
    assert listing(owner.client, url, queries=QUERIES["runs"]) == 3
    # when
    add_runs(workflow, team, 5)
    # then
    assert listing(owner.client, url, queries=QUERIES["runs"]) == 8


QUERIES = {
    "agents": 7,
    "namespaces": 8,
    "memories": 8,
    "search-keyword": 10,
    "search-hybrid": 16,
    "tasks": 9,
    "workflows": 8,
    "runs": 10,
}
