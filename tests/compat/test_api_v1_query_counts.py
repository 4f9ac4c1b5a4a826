"""Exact query counts of every list of API v1 for an agent: the same fixed number for a few rows and for more.

Each test lists a few rows, adds more, and lists again under the same exact count, so an N+1
(the count grows with the rows) and a new constant query both fail here. v1 answers through the
v2 services, so its lists cost what v2's do (test_api_query_counts.py), less what v1 does not show.

What an agent's GET /api/v1/personas costs, for example (7):
  1  SAVEPOINT: the request's transaction (ATOMIC_REQUESTS), nested in the test's own transaction;
  2  the API key, with its user, agent and home namespace (authentication);
  3  set_config('role', 'tmws_agent') and set_config('app.current_agent_id'): row-level security on;
  4  COUNT(*) for the page's `total` (every agent may list every agent);
  5  the page of agents, with their home namespaces joined;
  6  set_config back to the connection's own role and no agent, before the response is written;
  7  RELEASE SAVEPOINT: the request's transaction commits.
"""
from __future__ import annotations

import pytest

from compat.models import Persona, PersonaLink
from tests.query_rows import STEPS, add_memories, add_runs, add_tasks, add_workflows
from workflows import workflow_services
from workflows.definitions import CreateWorkflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def listing(counted):
    """GET a v1 list under an exact query count; answer how many rows it listed."""
    return lambda client, url, queries: counted(client, url, queries)["total"]


@pytest.fixture
def searching(counted):
    """POST a v1 search under an exact query count; answer how many memories it found."""
    return lambda client, body, queries: counted(client, "/api/v1/memory/search", queries, body)["count"]


@pytest.fixture
def owner(team):
    """The owner agent, after its first request (which also records the key's activity, once a minute)."""
    handle = team["owner"]
    assert handle.client.get("/api/v1/personas/owner-agent").status_code == 200
    return handle


def add_personas(make_agent, first: int, count: int) -> None:
    """Agents in several namespaces; every other one a persona the import linked to its persona-era row."""
    for index in range(first, first + count):
        namespace = ["team", "squad", "other", "company"][index % 4]
        if index % 2:
            make_agent(f"agent-{index}", namespace, capabilities={"python": True})
            continue
        legacy_id = f"7d4f7a60-5c1e-4e59-9b59-0d6f3b8a1c{index:02d}"
        persona = make_agent(f"persona-{index}", namespace, agent_type="persona",
                             capabilities={"persona_type": "athena", "persona_role": "strategist",
                                           "specialties": ["planning"], "capabilities": ["analysis"]},
                             metadata={"persona": {"id": legacy_id, "total_tasks": index}})
        row = Persona.objects.create(id=legacy_id, name=f"persona-{index}", type="athena", role="strategist")
        PersonaLink.objects.create(persona=row, agent=persona.agent)


def test_persona_list(owner, make_agent, listing):
    # given: the eight agents of the cast, and three more
    add_personas(make_agent, 0, 3)
    assert listing(owner.client, "/api/v1/personas", queries=QUERIES["personas"]) == 11
    # when
    add_personas(make_agent, 3, 5)
    # then
    assert listing(owner.client, "/api/v1/personas", queries=QUERIES["personas"]) == 16


def test_memory_list(owner, team, listing):
    # given
    add_memories(team, 3)
    assert listing(owner.client, "/api/v1/memory", queries=QUERIES["memories"]) == 3
    # when
    add_memories(team, 5)
    # then
    assert listing(owner.client, "/api/v1/memory", queries=QUERIES["memories"]) == 8


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
    assert listing(owner.client, "/api/v1/tasks", queries=QUERIES["tasks"]) == 3
    # when
    add_tasks(team, 5)
    # then
    assert listing(owner.client, "/api/v1/tasks", queries=QUERIES["tasks"]) == 8


def test_workflow_list(owner, team, listing):
    # given
    add_workflows(team, 3)
    assert listing(owner.client, "/api/v1/workflows", queries=QUERIES["workflows"]) == 3
    # when
    add_workflows(team, 5)
    # then
    assert listing(owner.client, "/api/v1/workflows", queries=QUERIES["workflows"]) == 8


def test_workflow_status(owner, team, django_assert_num_queries):
    """The status reads the newest of the runs the caller may see, however many there are."""

    def status() -> dict:
        with django_assert_num_queries(QUERIES["status"]):
            response = owner.client.get(f"/api/v1/workflows/{workflow.pk}/status")
        assert response.status_code == 200, response.content
        return response.json()["current_run"]

    # given: runs by the owner and by a member (whose outputs the owner may not read)
    workflow = workflow_services.create_workflow(
        owner.agent, CreateWorkflow.parse({"name": "Nightly", "steps": STEPS, "namespace": "team"}))
    add_runs(workflow, team, 2)
    assert status()["output"] == {"note": 1}  # the newest, which the owner started
    # when
    add_runs(workflow, team, 5)
    # then
    assert status()["output"] is None  # the newest, which the member started


QUERIES = {
    "personas": 7,  # the example above
    # the agent's readable namespaces and shares (one query), the count, the page with owners, namespaces
    # and usage joined
    "memories": 8,
    # is RLS on, the readable namespaces and shares, the keyword statistics, the keyword scores, the hits
    "search-keyword": 10,
    # keyword's, + is RLS on again, the planner's estimate as the service role (RESET ROLE, EXPLAIN,
    # SET LOCAL ROLE back), the semantic ranking, the fused scores
    "search-hybrid": 16,
    "tasks": 9,  # the readable namespaces, the count, the page with assignees joined, the dependencies' ids
    "workflows": 8,  # the readable namespaces, the count, the page with creators joined
    # the readable namespaces, the workflow, the agent's admin namespaces (whose runs it reads), the newest
    # visible run with the agent who started it, the workflow's counters read again (refresh_from_db)
    "status": 10,
}
