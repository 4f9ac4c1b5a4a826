"""API v1 with persona-era client payloads: same authentication and access control as v2, plus deprecation."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from compat.adapter import importance_to_learning_weight
from compat.models import Persona, PersonaLink
from memories.models import Memory
from workflows.models import Task, Workflow

PERSONA = {"type": "athena", "role": "strategist", "specialties": ["planning"], "capabilities": ["analysis"]}


@pytest.fixture
def personas(make_namespace, make_agent):
    """Two persona agents in `legacy` and an outsider in another namespace."""
    make_namespace("legacy")
    make_namespace("elsewhere")
    athena = make_agent("athena", "legacy", agent_type="persona",
                        capabilities={"persona_type": "athena", "persona_role": "strategist",
                                      "specialties": ["planning"], "capabilities": ["analysis"]},
                        metadata={"persona": {"id": "7d4f7a60-5c1e-4e59-9b59-0d6f3b8a1c01", "total_tasks": 3,
                                              "successful_tasks": 2}})
    # The legacy id names athena through the import's records, as the importer writes them.
    persona = Persona.objects.create(id="7d4f7a60-5c1e-4e59-9b59-0d6f3b8a1c01", name="athena", type="athena",
                                     role="strategist")
    PersonaLink.objects.create(persona=persona, agent=athena.agent, agent_created=False)
    artemis = make_agent("artemis", "legacy", agent_type="persona")
    outsider = make_agent("outsider", "elsewhere")
    return {"athena": athena, "artemis": artemis, "outsider": outsider}


def assert_deprecated(response, successor: str) -> None:
    assert response["Deprecation"] == "true"
    assert response["Sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert response["Link"] == f'<{successor}>; rel="successor-version"'


@pytest.mark.django_db
def test_personas_list_get_and_stats(personas):
    # given
    client = personas["artemis"].client

    # when
    listing = client.get("/api/v1/personas")
    by_name = client.get("/api/v1/personas/athena")
    by_legacy_id = client.get("/api/v1/personas/7d4f7a60-5c1e-4e59-9b59-0d6f3b8a1c01")
    stats = client.get("/api/v1/personas/athena/stats")

    # then
    assert listing.status_code == 200
    assert [p["name"] for p in listing.json()["items"]] == ["artemis", "athena", "outsider"]
    assert_deprecated(listing, "/api/v2/agents")
    assert by_name.status_code == 200
    persona = by_name.json()
    assert persona["id"] == "7d4f7a60-5c1e-4e59-9b59-0d6f3b8a1c01"
    assert (persona["type"], persona["role"], persona["specialties"], persona["capabilities"]) == (
        "athena", "strategist", ["planning"], ["analysis"])
    assert_deprecated(by_name, "/api/v2/agents/athena")
    assert by_legacy_id.json()["name"] == "athena"
    assert stats.status_code == 200
    assert stats.json()["total_tasks"] == 3 and stats.json()["successful_tasks"] == 2


@pytest.mark.django_db
def test_missing_persona_and_anonymous_calls_carry_the_headers(personas):
    # when
    missing = personas["artemis"].client.get("/api/v1/personas/hermes")
    anonymous = APIClient().get("/api/v1/memory")

    # then
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert_deprecated(missing, "/api/v2/agents/hermes")
    assert anonymous.status_code == 401
    assert_deprecated(anonymous, "/api/v2/memories")


@pytest.mark.django_db
@pytest.mark.usefixtures("precision")  # a similarity meets a threshold
def test_memory_crud_with_old_payloads(personas, django_capture_on_commit_callbacks):
    # given
    client = personas["athena"].client

    # when: create as in the persona era
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/v1/memory", {
            "content": "Split the payment service into ledger and gateway.", "persona_id": "athena",
            "importance": 0.8, "tags": ["architecture"], "context_type": "decision", "metadata": {"ticket": "PAY-1"},
        }, format="json")

    # then
    assert created.status_code == 201, created.json()
    memory_id = created.json()["id"]
    memory = Memory.objects.get(pk=memory_id)
    assert memory.agent.agent_id == "athena"
    assert (memory.access_level, memory.namespace.namespace) == ("shared", "legacy")
    assert memory.learning_weight == importance_to_learning_weight(0.8)
    assert memory.memory_category == "decision" and memory.context_tags == ["architecture"]
    assert_deprecated(created, "/api/v2/memories")

    # when: get, update, list, search
    fetched = client.get(f"/api/v1/memory/{memory_id}")
    updated = client.put(f"/api/v1/memory/{memory_id}", {"importance": 0.2, "tags": ["design"]}, format="json")
    listed = personas["artemis"].client.get("/api/v1/memory?persona_id=athena")
    found = personas["artemis"].client.post("/api/v1/memory/search", {
        "query": "payment ledger", "persona_id": "athena", "limit": 5}, format="json")

    # then
    assert fetched.json()["importance"] == 0.8 and fetched.json()["persona_name"] == "athena"
    assert fetched.json()["has_embedding"] is True
    assert_deprecated(fetched, f"/api/v2/memories/{memory_id}")
    assert updated.status_code == 200 and updated.json()["importance"] == 0.2
    assert updated.json()["tags"] == ["design"]
    assert [m["id"] for m in listed.json()["items"]] == [memory_id]
    assert found.status_code == 200
    assert [r["id"] for r in found.json()["results"]] == [memory_id]
    assert found.json()["results"][0]["similarity"] > 0.3

    # when: delete
    deleted = client.delete(f"/api/v1/memory/{memory_id}")

    # then
    assert deleted.status_code == 200 and deleted.json() == {"deleted": True, "id": memory_id}
    assert not Memory.objects.filter(pk=memory_id).exists()


@pytest.mark.parametrize(("who", "read", "write"), [
    ("athena", 200, 200), ("artemis", 200, 403), ("outsider", 404, 404),
])
@pytest.mark.django_db
def test_memory_access_is_v2s(personas, who, read, write):
    # given: athena's shared memory in `legacy`
    created = personas["athena"].client.post("/api/v1/memory", {"content": "Quarterly plan.", "importance": 0.5},
                                              format="json")
    memory_id = created.json()["id"]
    client = personas[who].client

    # when
    got = client.get(f"/api/v1/memory/{memory_id}")
    changed = client.put(f"/api/v1/memory/{memory_id}", {"content": "Changed."}, format="json")
    searched = client.post("/api/v1/memory/search", {"query": "quarterly plan", "mode": "keyword"}, format="json")

    # then
    assert got.status_code == read
    assert changed.status_code == write
    expected_content = "Changed." if write == 200 else "Quarterly plan."
    assert Memory.objects.get(pk=memory_id).content == expected_content
    assert (memory_id in [r["id"] for r in searched.json()["results"]]) == (read == 200 and write != 200)


@pytest.mark.django_db
def test_an_agent_cannot_write_as_another_persona(personas):
    # when
    response = personas["artemis"].client.post("/api/v1/memory", {"content": "Not mine.", "persona_id": "athena"},
                                               format="json")

    # then
    assert response.status_code == 403
    assert response.json()["error"]["fields"] == {"agent_id": ["Agents store memories only as themselves."]}
    assert Memory.objects.count() == 0


@pytest.mark.django_db
def test_tasks_crud_and_complete(personas):
    # given
    client = personas["athena"].client

    # when
    created = client.post("/api/v1/tasks", {"title": "Audit the login flow", "priority": "high",
                                            "assigned_persona_id": "artemis", "task_type": "review",
                                            "tags": ["security"]}, format="json")
    task_id = created.json()["id"]
    fetched = client.get(f"/api/v1/tasks/{task_id}")
    updated = client.put(f"/api/v1/tasks/{task_id}", {"status": "in_progress", "progress": 0.5}, format="json")
    listed = client.get("/api/v1/tasks?assigned_persona_id=artemis")
    completed = client.post(f"/api/v1/tasks/{task_id}/complete", {"result": {"findings": 0}}, format="json")

    # then
    assert created.status_code == 201, created.json()
    assert created.json()["assigned_persona"] == "artemis"
    assert_deprecated(created, "/api/v2/tasks")
    assert fetched.json()["title"] == "Audit the login flow"
    assert_deprecated(fetched, f"/api/v2/tasks/{task_id}")
    assert updated.status_code == 200, updated.json()
    assert updated.json()["status"] == "in_progress" and updated.json()["progress"] == 0.5
    assert [t["id"] for t in listed.json()["items"]] == [task_id]
    assert completed.status_code == 200, completed.json()
    assert completed.json()["status"] == "completed" and completed.json()["result"] == {"findings": 0}
    assert personas["outsider"].client.get(f"/api/v1/tasks/{task_id}").status_code == 404

    # when
    deleted = client.delete(f"/api/v1/tasks/{task_id}")

    # then
    assert deleted.status_code == 200
    assert not Task.objects.filter(pk=task_id).exists()


@pytest.mark.django_db
def test_task_list_query_count_does_not_grow_with_rows(personas):
    # given
    client = personas["athena"].client

    def create(title, dependencies=()):
        response = client.post("/api/v1/tasks", {"title": title, "dependencies": list(dependencies)}, format="json")
        assert response.status_code == 201, response.json()
        return response.json()["id"]

    first = create("first")
    create("second", [first])
    client.get("/api/v1/personas/athena")  # the first request of a key also records the agent's activity
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/v1/tasks").status_code == 200
    for index in range(5):
        create(f"more {index}", [first])

    # when
    with CaptureQueriesContext(connection) as many:
        response = client.get("/api/v1/tasks")

    # then
    assert response.json()["total"] == 7
    assert sorted(len(item["dependencies"]) for item in response.json()["items"]) == [0, 1, 1, 1, 1, 1, 1]
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.django_db
def test_workflows_crud_execute_and_status(personas, django_capture_on_commit_callbacks):
    # given
    client = personas["athena"].client
    steps = [{"name": "note", "action": "store_memory", "params": {"content": "Release started."}}]

    # when
    created = client.post("/api/v1/workflows", {"name": "Release", "workflow_type": "sequential",
                                                "steps": steps, "tags": ["ops"]}, format="json")
    assert created.status_code == 201, created.json()
    workflow_id = created.json()["id"]
    updated = client.put(f"/api/v1/workflows/{workflow_id}", {"description": "Weekly release."}, format="json")
    listed = client.get("/api/v1/workflows")
    with django_capture_on_commit_callbacks(execute=True):
        executed = client.post(f"/api/v1/workflows/{workflow_id}/execute", {"input": {}}, format="json")
    run_status = client.get(f"/api/v1/workflows/{workflow_id}/status")

    # then
    assert created.json()["created_by"] == "athena"
    assert_deprecated(created, "/api/v2/workflows")
    assert updated.json()["description"] == "Weekly release."
    assert [w["id"] for w in listed.json()["items"]] == [workflow_id]
    assert executed.status_code == 202, executed.json()
    assert_deprecated(executed, f"/api/v2/workflows/{workflow_id}/run")
    assert run_status.status_code == 200
    assert run_status.json()["current_run"]["id"] == executed.json()["run_id"]
    assert run_status.json()["status"] == "completed", run_status.json()
    assert personas["outsider"].client.get(f"/api/v1/workflows/{workflow_id}/status").status_code == 404

    # when
    deleted = client.delete(f"/api/v1/workflows/{workflow_id}")

    # then
    assert deleted.status_code == 200
    assert not Workflow.objects.filter(pk=workflow_id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["2028-01-31", "Mon, 31 Jan 2028 00:00:00 GMT"])
def test_sunset_setting_takes_a_date_or_an_http_date(personas, settings, value):
    # given
    settings.TMWS_V1_SUNSET = value

    # when
    response = personas["athena"].client.get("/api/v1/personas")

    # then
    assert response.status_code == 200
    assert response["Sunset"] == "Mon, 31 Jan 2028 00:00:00 GMT"


@pytest.mark.parametrize(("value", "errors"), [("", []), ("2028-01-31", []), ("next spring", ["compat.E001"])])
def test_sunset_setting_is_checked_at_start_up(settings, value, errors):
    # given
    from compat.sunset import check_sunset_setting

    settings.TMWS_V1_SUNSET = value

    # when
    found = check_sunset_setting()

    # then
    assert [error.id for error in found] == errors


@pytest.mark.parametrize(("method", "path", "body", "field", "message"), [
    ("post", "/api/v1/memory", {"content": "x", "importance": 1.5}, "importance",
     "importance must be between 0.0 and 1.0."),
    ("post", "/api/v1/memory", {"content": "x", "tags": "deploy"}, "tags", "tags must be a list of strings."),
    ("post", "/api/v1/memory", {"importance": 0.5}, "content", "content is required."),
    ("post", "/api/v1/memory/search", {"query": "x", "tags": "deploy"}, "tags",
     "tags must be a list of at most 50 strings."),
    ("post", "/api/v1/memory/search", {"query": "x", "min_importance": 2}, "min_importance",
     "min_importance must be between 0.0 and 1.0."),
    ("post", "/api/v1/tasks", {"title": "x", "max_retries": True}, "max_retries",
     "max_retries must be an integer from 0 to 100."),
    ("post", "/api/v1/workflows", {"name": "x", "status": "running"}, "status",
     "status must be one of draft, active, inactive."),
    ("get", "/api/v1/memory?limit=0", None, "limit", "limit must be an integer from 1 to 100."),
])
@pytest.mark.django_db
def test_bad_v1_input_names_the_v1_field(personas, method, path, body, field, message):
    # when
    response = getattr(personas["athena"].client, method)(path, body, format="json")

    # then
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["fields"] == {field: [message]}
    assert Memory.objects.count() == 0 and Task.objects.count() == 0 and Workflow.objects.count() == 0


@pytest.mark.django_db
def test_persona_era_leniency_is_kept(personas):
    # given
    client = personas["athena"].client

    # when: an empty context_type, a persona_id that is no string, empty search filters
    created = client.post("/api/v1/memory", {"content": "Lenient.", "context_type": ""}, format="json")
    unknown = client.post("/api/v1/memory", {"content": "Lenient.", "persona_id": 7}, format="json")
    found = client.post("/api/v1/memory/search", {"query": "  lenient ", "tags": [], "context_type": 0,
                                                  "mode": None}, format="json")

    # then
    assert created.status_code == 201 and created.json()["context_type"] == "general"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert found.status_code == 200 and found.json()["query"] == "  lenient "
    assert [r["id"] for r in found.json()["results"]] == [created.json()["id"]]
