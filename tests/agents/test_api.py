"""Agents API: registration, reading, self-service changes, retirement and key rotation."""
from __future__ import annotations

import pytest

from agents.models import Agent

NEW_AGENT = {
    "agent_id": "research-bot",
    "display_name": "Research bot",
    "agent_type": "language_model",
    "capabilities": {"search": True},
    "configuration": {"temperature": 0.2},
    "namespace": "team",
    "access_level": "standard",
    "metadata": {"owner": "research"},
}


@pytest.fixture
def home(make_namespace):
    return make_namespace("team")


def _bearer(client, key):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.mark.parametrize("registrar", ["operator", "admin_agent"])
def test_operators_and_admin_agents_register_agents_and_see_the_key_once(
    registrar, home, operator_client, make_agent, client
):
    # given
    caller = operator_client if registrar == "operator" else make_agent("boss", "team", access_level="admin").client
    # when
    response = caller.post("/api/v2/agents", NEW_AGENT, format="json")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in NEW_AGENT} == NEW_AGENT
    assert body["is_active"] is True
    assert body["api_key"].startswith("tmws_")
    new_agent = Agent.objects.get(agent_id="research-bot")
    assert new_agent.namespace == home
    # the key works, and no read shows it again
    from rest_framework.test import APIClient

    new_client = _bearer(APIClient(), body["api_key"])
    me = new_client.get("/api/v2/agents/me")
    assert me.status_code == 200
    assert me.json()["agent_id"] == "research-bot"
    for path in ("/api/v2/agents", "/api/v2/agents/research-bot", "/api/v2/agents/me"):
        shown = new_client.get(path)
        assert shown.status_code == 200
        assert "api_key" not in shown.content.decode()
        assert body["api_key"].split("_", 2)[2] not in shown.content.decode()


def test_standard_agent_may_not_register_agents(home, make_agent):
    # given
    standard = make_agent("worker", "team")
    before = Agent.objects.count()
    # when
    response = standard.client.post("/api/v2/agents", NEW_AGENT, format="json")
    # then
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert Agent.objects.count() == before


def test_list_and_retrieve_agents(home, make_agent):
    # given
    first = make_agent("alpha-agent", "team", capabilities={"code": True})
    make_agent("beta-agent", "team")
    # when
    listed = first.client.get("/api/v2/agents")
    filtered = first.client.get("/api/v2/agents", {"capability": "code"})
    detail = first.client.get("/api/v2/agents/beta-agent")
    # then
    assert listed.status_code == 200
    assert [a["agent_id"] for a in listed.json()["results"]] == ["alpha-agent", "beta-agent"]
    assert listed.json()["count"] == 2
    assert [a["agent_id"] for a in filtered.json()["results"]] == ["alpha-agent"]
    assert detail.status_code == 200
    assert detail.json()["namespace"] == "team"
    assert first.client.get("/api/v2/agents/nobody").status_code == 404


def test_me_describes_the_calling_agent(home, make_agent):
    # given
    handle = make_agent("self-aware", "team", display_name="Self aware")
    # when
    response = handle.client.get("/api/v2/agents/me")
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["agent_id"], body["display_name"], body["namespace"], body["access_level"]) == (
        "self-aware", "Self aware", "team", "standard",
    )


def test_agent_changes_its_own_capabilities(home, make_agent):
    # given
    handle = make_agent("learner", "team")
    # when
    response = handle.client.patch(
        "/api/v2/agents/learner", {"capabilities": {"sql": True}, "display_name": "Learner"}, format="json"
    )
    # then
    assert response.status_code == 200, response.content
    assert response.json()["capabilities"] == {"sql": True}
    handle.agent.refresh_from_db()
    assert (handle.agent.capabilities, handle.agent.display_name) == ({"sql": True}, "Learner")


@pytest.mark.parametrize("change", [{"access_level": "admin"}, {"is_active": False}])
def test_agent_may_not_raise_its_own_access_level_or_status(home, make_agent, change):
    # given
    handle = make_agent("climber", "team")
    # when
    response = handle.client.patch("/api/v2/agents/climber", change, format="json")
    # then
    assert response.status_code == 403
    field = next(iter(change))
    assert response.json()["error"]["fields"] == {field: [response.json()["error"]["message"]]}
    handle.agent.refresh_from_db()
    assert (handle.agent.access_level, handle.agent.is_active) == ("standard", True)


def test_agent_may_not_change_another_agent(home, make_agent):
    # given
    handle = make_agent("meddler", "team")
    make_agent("victim", "team", capabilities={"a": 1})
    # when
    response = handle.client.patch("/api/v2/agents/victim", {"capabilities": {}}, format="json")
    # then
    assert response.status_code == 403
    assert Agent.objects.get(agent_id="victim").capabilities == {"a": 1}


def test_operator_promotes_an_agent(home, make_agent, operator_client):
    # given
    make_agent("promoted", "team")
    # when
    response = operator_client.patch("/api/v2/agents/promoted", {"access_level": "admin"}, format="json")
    # then
    assert response.status_code == 200
    assert Agent.objects.get(agent_id="promoted").access_level == "admin"


def test_delete_retires_the_agent_and_its_key_stops_working(home, make_agent, operator_client):
    # given
    handle = make_agent("retiree", "team")
    assert handle.client.get("/api/v2/agents/me").status_code == 200
    # when
    response = operator_client.delete("/api/v2/agents/retiree")
    # then
    assert response.status_code == 204
    agent = Agent.objects.get(agent_id="retiree")
    assert agent.is_active is False
    assert handle.client.get("/api/v2/agents/me").status_code == 401


def test_standard_agent_may_not_retire_another(home, make_agent):
    # given
    handle = make_agent("rogue", "team")
    make_agent("target", "team")
    # when
    response = handle.client.delete("/api/v2/agents/target")
    # then
    assert response.status_code == 403
    assert Agent.objects.get(agent_id="target").is_active is True


@pytest.mark.parametrize("rotator", ["self", "operator"])
def test_rotate_key_revokes_the_old_key_and_issues_a_working_one(home, make_agent, operator_client, rotator):
    # given
    handle = make_agent("rotating", "team")
    old_client = handle.client
    caller = old_client if rotator == "self" else operator_client
    # when
    response = caller.post("/api/v2/agents/rotating/rotate-key")
    # then
    assert response.status_code == 200
    new_key = response.json()["api_key"]
    assert new_key != handle.key
    assert old_client.get("/api/v2/agents/me").status_code == 401
    from rest_framework.test import APIClient

    assert _bearer(APIClient(), new_key).get("/api/v2/agents/me").json()["agent_id"] == "rotating"


def test_agent_may_not_rotate_another_agents_key(home, make_agent):
    # given
    handle = make_agent("thief", "team")
    victim = make_agent("keeper", "team")
    # when
    response = handle.client.post("/api/v2/agents/keeper/rotate-key")
    # then
    assert response.status_code == 403
    assert victim.client.get("/api/v2/agents/me").status_code == 200


def test_registering_a_duplicate_agent_id_conflicts(home, make_agent, operator_client):
    # given
    make_agent("research-bot", "team")
    before = Agent.objects.count()
    # when
    response = operator_client.post("/api/v2/agents", NEW_AGENT, format="json")
    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"
    assert list(response.json()["error"]["fields"]) == ["agent_id"]
    assert Agent.objects.count() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"agent_id": "has space"}, "agent_id"),
        ({"agent_id": "-leading-dash"}, "agent_id"),
        ({"agent_id": ""}, "agent_id"),
        ({"agent_id": "x" * 129}, "agent_id"),
        ({"namespace": "no-such-namespace"}, "namespace"),
        ({"access_level": "root"}, "access_level"),
        ({"capabilities": ["not", "an", "object"]}, "capabilities"),
    ],
)
def test_bad_registration_input_is_refused_naming_the_field(home, operator_client, changes, field):
    # given
    before = Agent.objects.count()
    # when
    response = operator_client.post("/api/v2/agents", {**NEW_AGENT, **changes}, format="json")
    # then
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] in {"invalid", "unknown_namespace"}
    assert field in error["fields"]
    assert Agent.objects.count() == before


def test_me_for_an_operator_is_not_found(operator_client):
    # when
    response = operator_client.get("/api/v2/agents/me")
    # then
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_an_agent"


@pytest.fixture
def scoped_operator(db, make_namespace):
    """A staff operator (not a superuser) holding change rights on namespace `team` only."""
    from django.contrib.auth import get_user_model
    from guardian.shortcuts import assign_perm
    from rest_framework.test import APIClient

    from namespaces.models import Namespace

    make_namespace("elsewhere")
    user = get_user_model().objects.create_user("scoped-op", password="pw-123456!", is_staff=True)
    assign_perm("change_namespace", user, Namespace.objects.get(namespace="team"))
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_scoped_operator_registers_agents_only_in_its_namespaces(home, scoped_operator):
    # when
    inside = scoped_operator.post("/api/v2/agents", dict(NEW_AGENT, agent_id="inside-bot"), format="json")
    outside = scoped_operator.post(
        "/api/v2/agents", dict(NEW_AGENT, agent_id="outside-bot", namespace="elsewhere"), format="json"
    )
    # then
    assert inside.status_code == 201, inside.content
    assert outside.status_code == 403
    assert outside.json()["error"]["code"] == "permission_denied"
    assert not Agent.objects.filter(agent_id="outside-bot").exists()


def test_scoped_operator_may_not_grant_the_admin_level(home, scoped_operator, make_agent):
    # given
    worker = make_agent("worker", "team")
    # when
    created = scoped_operator.post(
        "/api/v2/agents", dict(NEW_AGENT, agent_id="would-be-admin", access_level="admin"), format="json"
    )
    promoted = scoped_operator.patch("/api/v2/agents/worker", {"access_level": "admin"}, format="json")
    # then
    assert created.status_code == 403
    assert promoted.status_code == 403
    assert not Agent.objects.filter(agent_id="would-be-admin").exists()
    worker.agent.refresh_from_db()
    assert worker.agent.access_level == "standard"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"access_level": "root"}, "access_level must be one of standard, admin."),
        ({"is_active": None}, "is_active must be true or false."),
        ({"agent_type": ""}, "agent_type may not be empty."),
        ({"display_name": None}, "display_name must be a string."),
        ({"capabilities": ["a"]}, "capabilities must be a JSON object."),
        ({"namespace": "nowhere"}, "Namespace 'nowhere' does not exist."),
    ],
)
def test_bad_changes_are_refused_naming_the_field(home, make_agent, operator_client, change, message):
    # given
    make_agent("steady", "team", capabilities={"a": 1})
    before = Agent.objects.values().get(agent_id="steady")
    # when
    response = operator_client.patch("/api/v2/agents/steady", change, format="json")
    # then
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"] == {next(iter(change)): [message]}
    assert Agent.objects.values().get(agent_id="steady") == before
