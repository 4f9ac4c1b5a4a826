"""Exact query counts of every list of API v2 for operators: the same fixed number for a few rows and for more.

The agents' counts are in test_api_query_counts.py. Operators call with an operator key (`create_operator_key`),
as their scripts do: a superuser, and a staff operator holding `change_namespace` on `team` (so also on `squad`)
and `view_namespace` on `other`. Each test lists a few rows, adds more, and lists again under the same exact
count, so an N+1 (the count grows with the rows) and a new constant query both fail here.

What a superuser's GET /api/v2/agents costs, for example (5; the other lists differ in their own reads):
  1  SAVEPOINT: the request's transaction (ATOMIC_REQUESTS), nested in the test's own transaction;
  2  the API key, with its user (an operator has no agent, so no row-level security is switched on);
  3  COUNT(*) for the page's `count`;
  4  the page of agents, with their home namespaces joined;
  5  RELEASE SAVEPOINT: the request's transaction commits.
A scoped operator's lists filtered by namespace add three queries for its scope, computed once per request
and set of rights (namespaces.access.operator_namespace_ids): the namespaces it holds rights on, their paths,
and the namespaces at or below those paths.
"""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from agents.contracts import IssueOperatorKey
from agents.services import issue_operator_key
from namespaces.models import Namespace
from tests.query_rows import STEPS, add_memories, add_runs, add_tasks, add_workflows
from workflows import workflow_services
from workflows.definitions import CreateWorkflow
from workflows.models import WorkflowRun

pytestmark = pytest.mark.django_db

OPERATORS = ["superuser", "scoped"]


@pytest.fixture
def listing(counted):
    """GET a list under an exact query count; answer how many rows it listed."""
    return lambda client, url, queries: counted(client, url, queries)["count"]


@pytest.fixture
def searching(counted):
    """POST a search under an exact query count; answer how many memories it found."""
    return lambda client, url, body, queries: counted(client, url, queries, body)["count"]


@pytest.fixture(params=OPERATORS)
def operator(request, team):
    """(kind, user, client): an operator calling with its own key."""
    users = get_user_model().objects
    if request.param == "superuser":
        user = users.create_superuser("key-operator", "key-op@example.com", "unused-pass-123!")
    else:
        user = users.create_user("scoped-key-operator", password="unused-pass-123!", is_staff=True)
        for slug, codenames in {"team": ["view_namespace", "change_namespace"], "other": ["view_namespace"]}.items():
            for codename in codenames:
                assign_perm(codename, user, Namespace.objects.get(namespace=slug))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_operator_key(user, IssueOperatorKey())}")
    return request.param, user, client


def test_agent_list(operator, make_agent, listing):
    kind, _, client = operator
    # given: the eight agents of the cast
    assert listing(client, "/api/v2/agents", queries=QUERIES[kind]["agents"]) == 8
    # when: five more, in several namespaces
    for index, namespace in enumerate(["team", "team", "squad", "other", "company"]):
        make_agent(f"extra-{index}", namespace, capabilities={"python": True})
    # then
    assert listing(client, "/api/v2/agents", queries=QUERIES[kind]["agents"]) == 13


def test_namespace_list(operator, make_namespace, listing):
    kind, _, client = operator
    few, many = ROWS[kind]["namespaces"]
    # given: company, team, squad and other
    assert listing(client, "/api/v2/namespaces", queries=QUERIES[kind]["namespaces"]) == few
    # when: children of namespaces inside and outside the scoped operator's scope, and new roots
    for index, parent in enumerate(["team", "squad", "other", "company", None]):
        make_namespace(f"extra-{index}", parent=parent, policy="open")
    # then
    assert listing(client, "/api/v2/namespaces", queries=QUERIES[kind]["namespaces"]) == many


def test_memory_list(operator, team, listing):
    kind, _, client = operator
    few, many = ROWS[kind]["memories"]
    # given
    add_memories(team, 3)
    assert listing(client, "/api/v2/memories", queries=QUERIES[kind]["memories"]) == few
    # when
    add_memories(team, 5)
    # then
    assert listing(client, "/api/v2/memories", queries=QUERIES[kind]["memories"]) == many


@pytest.mark.parametrize("url", ["/api/v2/memories/search", "/api/v2/memories/contextual-search"])
@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_memory_search(operator, team, searching, url, mode):
    kind, _, client = operator
    few, many = ROWS[kind]["memories"]
    name = f"{url.rsplit('/', 1)[1]}-{mode}"
    # given: only keyword hits (embeddings are computed on commit, which these tests do not reach)
    add_memories(team, 3)
    body = {"query": "harbour note", "mode": mode, "limit": 50}
    if url.endswith("contextual-search"):
        body.update(conversation_context=[{"role": "user", "content": "Where do the boats dock?"}],
                    task_context={"title": "Plan the harbour", "tags": ["ops"], "namespace": "team"})
    assert searching(client, url, body, queries=QUERIES[kind][name]) == few
    # when
    add_memories(team, 5)
    # then
    assert searching(client, url, body, queries=QUERIES[kind][name]) == many


def test_task_list(operator, team, listing):
    kind, _, client = operator
    # given
    add_tasks(team, 3)
    assert listing(client, "/api/v2/tasks", queries=QUERIES[kind]["tasks"]) == 3
    # when
    add_tasks(team, 5)
    # then
    assert listing(client, "/api/v2/tasks", queries=QUERIES[kind]["tasks"]) == 8


def test_workflow_list(operator, team, listing):
    kind, _, client = operator
    # given
    add_workflows(team, 3)
    assert listing(client, "/api/v2/workflows", queries=QUERIES[kind]["workflows"]) == 3
    # when
    add_workflows(team, 5)
    # then
    assert listing(client, "/api/v2/workflows", queries=QUERIES[kind]["workflows"]) == 8


def add_operator_runs(workflow, user, count: int) -> None:
    """Runs the operator started (it reads their outputs), beside the agents' runs (it does not)."""
    for index in range(count):
        WorkflowRun.objects.create(workflow=workflow, status="completed", output={"note": index},
                                   metadata={"triggered_by_user_id": user.pk})


def test_workflow_run_list(operator, team, listing):
    kind, user, client = operator
    # given
    workflow = workflow_services.create_workflow(team["owner"].agent, CreateWorkflow.parse({"name": "Nightly", "steps": STEPS}))
    url = f"/api/v2/workflows/{workflow.pk}/runs"
    add_runs(workflow, team, 2)
    add_operator_runs(workflow, user, 1)
    assert listing(client, url, queries=QUERIES[kind]["runs"]) == 3
    # when
    add_runs(workflow, team, 3)
    add_operator_runs(workflow, user, 2)
    # then
    assert listing(client, url, queries=QUERIES[kind]["runs"]) == 8


# Rows listed (after the few, after the many) where the scoped operator sees fewer than a superuser.
ROWS = {
    "superuser": {"namespaces": (4, 9), "memories": (3, 8)},
    "scoped": {"namespaces": (3, 6), "memories": (3, 8)},
}

QUERIES = {
    "superuser": {
        "agents": 5,  # the example above
        "namespaces": 5,  # the count, the page with parents joined (a superuser sees every namespace)
        "memories": 5,  # the count, the page with owners, namespaces and usage joined
        "search-keyword": 6,  # the keyword statistics, the keyword scores, the hits for display
        "search-hybrid": 10,  # keyword's, + is RLS on, the planner's estimate, semantic ranking, fused scores
        "contextual-search-keyword": 7,  # search's, + the task's namespace (its memories gain a boost)
        "contextual-search-hybrid": 11,  # hybrid search's, + the task's namespace
        "tasks": 6,  # the count, the page with assignees, creators and namespaces joined, the dependencies
        "workflows": 5,  # the count, the page with creators and namespaces joined
        "runs": 6,  # the workflow, the count, the page of runs with the agents who started them joined
    },
    "scoped": {
        "agents": 5,  # as the superuser's: every operator may list every agent, so no scope is read
        "namespaces": 8,  # the superuser's, + the scope
        "memories": 8,  # the superuser's, + the scope
        "search-keyword": 9,  # the superuser's, + the scope
        "search-hybrid": 13,  # the superuser's, + the scope
        "contextual-search-keyword": 10,  # the superuser's, + the scope
        "contextual-search-hybrid": 14,  # the superuser's, + the scope
        "tasks": 9,  # the superuser's, + the scope
        "workflows": 8,  # the superuser's, + the scope
        # the superuser's, + the scope it reads workflows in (view or change rights) and, a second set,
        # the one where it reads every run (change rights)
        "runs": 12,
    },
}
