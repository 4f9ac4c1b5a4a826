"""API v1 under property-based fuzzing: whatever JSON, query string or identifier a client sends, no 5xx.

API v1 has no OpenAPI schema (it is the deprecated persona-era contract), so the schemathesis stage
of CI (tests/fuzz/run_schemathesis.py) cannot reach it; hypothesis generates the requests here
instead: every v1 route and method, with bodies built from the fields v1 reads (values of any JSON
type) plus arbitrary objects, and query parameters from the filters and paging v1 reads.
"""
from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from memories.contracts import StoreMemory
from memories.services import create_memory
from workflows.contracts import CreateTask
from workflows.definitions import CreateWorkflow
from workflows.task_services import create_task
from workflows.workflow_services import create_workflow

pytestmark = pytest.mark.django_db

EXAMPLES = 25
# No shrinking: a failing request is reported as generated (shrinking replays hundreds of requests).
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                         phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from(["", "high", "0.5", "athena", "team", "private", "system", "completed", "keyword",
                       "00000000-0000-0000-0000-000000000000", "9" * 25, "-1", "1e3"])
)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)

FIELDS = {
    "memory": ["content", "persona_id", "importance", "tags", "context_type", "metadata", "namespace",
               "access_level", "query", "limit", "mode", "min_similarity", "min_importance"],
    "task": ["title", "description", "task_type", "priority", "status", "dependencies", "tags", "metadata",
             "max_retries", "namespace", "progress", "result", "assigned_persona_id", "error_message"],
    "workflow": ["name", "description", "workflow_type", "status", "steps", "config", "tags", "metadata",
                 "namespace", "input", "context"],
}


def bodies(kind: str):
    """Objects of v1's own fields with values of any type, or any JSON at all."""
    known = st.dictionaries(st.sampled_from(FIELDS[kind]), json_values, max_size=6)
    return known | json_values


QUERY_KEYS = ["limit", "offset", "persona_id", "persona_only", "context_type", "tag", "status",
              "assigned_persona_id"]
query_strings = st.dictionaries(
    st.sampled_from(QUERY_KEYS),
    st.text(max_size=24) | st.sampled_from(["99999999999999999999", "-5", "0", "1e3", "athena", "1", "true"]),
    max_size=4,
)
identifiers = st.sampled_from(["{memory}", "{task}", "{workflow}", "00000000-0000-0000-0000-000000000000",
                               "not-a-uuid", "athena", "%00", "..%2F"]) | st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=12)

ROUTES = [
    ("get", "/api/v1/personas", None), ("get", "/api/v1/personas/{id}", None),
    ("get", "/api/v1/personas/{id}/stats", None),
    ("get", "/api/v1/memory", None), ("post", "/api/v1/memory", "memory"), ("post", "/api/v1/memory/search", "memory"),
    ("get", "/api/v1/memory/{id}", None), ("put", "/api/v1/memory/{id}", "memory"),
    ("patch", "/api/v1/memory/{id}", "memory"), ("delete", "/api/v1/memory/{id}", None),
    ("get", "/api/v1/tasks", None), ("post", "/api/v1/tasks", "task"), ("get", "/api/v1/tasks/{id}", None),
    ("put", "/api/v1/tasks/{id}", "task"), ("patch", "/api/v1/tasks/{id}", "task"),
    ("post", "/api/v1/tasks/{id}/complete", "task"), ("delete", "/api/v1/tasks/{id}", None),
    ("get", "/api/v1/workflows", None), ("post", "/api/v1/workflows", "workflow"),
    ("get", "/api/v1/workflows/{id}", None), ("put", "/api/v1/workflows/{id}", "workflow"),
    ("post", "/api/v1/workflows/{id}/execute", "workflow"), ("get", "/api/v1/workflows/{id}/status", None),
    ("delete", "/api/v1/workflows/{id}", None),
]


@pytest.fixture
def v1_world(team, make_agent, operator_client):
    """The usual cast plus a persona agent, and one memory, task and workflow for identifiers to name."""
    make_agent("athena", "team", agent_type="persona",
               metadata={"persona": {"id": "7d4f7a60-5c1e-4e59-9b59-0d6f3b8a1c01", "total_tasks": 3}})
    owner = team["owner"].agent
    ids = {
        "memory": str(create_memory(owner, StoreMemory.parse({"content": "A v1 note.", "access_level": "public",
                                            "namespace": "team"})).pk),
        "task": str(create_task(owner, CreateTask.parse({"title": "A v1 task.", "namespace": "team"})).pk),
        "workflow": str(create_workflow(owner, CreateWorkflow.parse({"name": "A v1 workflow.", "namespace": "team", "steps": [
            {"name": "pause", "action": "wait", "params": {"seconds": 0}}]})).pk),
    }
    clients = {"agent": team["owner"].client, "outsider": team["outsider"].client, "operator": operator_client}
    return clients, ids


def request_strategy(kind: str | None):
    return st.tuples(st.sampled_from(["agent", "outsider", "operator"]), identifiers, query_strings,
                     bodies(kind) if kind else st.none())


@pytest.mark.parametrize(("method", "path", "kind"), ROUTES, ids=[f"{m}-{p}" for m, p, _ in ROUTES])
def test_no_v1_request_answers_a_server_error(v1_world, method, path, kind):
    clients, ids = v1_world

    @FUZZ_SETTINGS
    @given(request_strategy(kind))
    def check(case):
        who, identifier, query, body = case
        named = ids.get(identifier.strip("{}")) if identifier.startswith("{") else None
        url = path.replace("{id}", named or quote(identifier, safe="%"))
        client = clients[who]
        payload = json.dumps(body) if body is not None else ""
        response = client.generic(method.upper(), url, payload, content_type="application/json",
                                  QUERY_STRING=urlencode(query))
        assert response.status_code < 500, (method, url, query, body, response.content[:500])

    check()
