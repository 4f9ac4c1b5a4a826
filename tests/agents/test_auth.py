"""Authentication: agent bearer keys, operator sessions (with CSRF), basic auth and operator keys."""
from __future__ import annotations

import base64
import re
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from agents.models import Agent
from namespaces.models import Namespace


@pytest.fixture
def agent(make_namespace, make_agent):
    make_namespace("team")
    return make_agent("authed-agent", "team")


def _client(authorization: str | None = None) -> APIClient:
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


@pytest.mark.django_db
def test_no_credentials_answers_401_with_a_bearer_challenge():
    # when
    response = _client().get("/api/v2/memories")
    # then
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer tmws_0000000000000000_not-the-secret",
        "Bearer tmws_nolookup",
        "Bearer somebody-elses-token",
        "Bearer",
        "Bearer two parts",
    ],
    ids=["wrong-secret", "no-secret", "foreign-format", "no-key", "extra-part"],
)
def test_bad_bearer_credentials_answer_401(agent, authorization):
    # when
    response = _client(authorization).get("/api/v2/agents/me")
    # then
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_real_key_with_a_changed_secret_answers_401(agent):
    # when
    response = _client(f"Bearer {agent.key[:-1]}{'A' if agent.key[-1] != 'A' else 'B'}").get("/api/v2/agents/me")
    # then
    assert response.status_code == 401


def test_an_inactive_agent_is_refused(agent):
    # given
    Agent.objects.filter(pk=agent.agent.pk).update(is_active=False)
    # when
    response = agent.client.get("/api/v2/agents/me")
    # then
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This agent is inactive."


def test_a_valid_key_authenticates_and_records_activity(agent):
    # when
    response = agent.client.get("/api/v2/agents/me")
    # then
    assert response.status_code == 200
    agent.agent.refresh_from_db()
    assert agent.agent.last_activity is not None


def test_operator_session_works_and_enforces_csrf(operator_user):
    # given: a browser-like session with CSRF checks on
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="operator", password="op-pass-123!")
    assert client.get("/admin/").status_code == 200  # a rendered form (logout) sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    body = {"namespace": "from-session", "access_policy": "open"}
    # when
    read = client.get("/api/v2/namespaces")
    without_token = client.post("/api/v2/namespaces", body, format="json")
    with_token = client.post("/api/v2/namespaces", body, format="json", HTTP_X_CSRFTOKEN=token)
    # then
    assert read.status_code == 200
    assert without_token.status_code == 403
    assert "CSRF" in without_token.json()["error"]["message"]
    assert with_token.status_code == 201, with_token.content
    assert Namespace.objects.filter(namespace="from-session").count() == 1


def test_operator_basic_auth_works(operator_user):
    # given
    credentials = base64.b64encode(b"operator:op-pass-123!").decode()
    client = _client(f"Basic {credentials}")
    # when
    response = client.post("/api/v2/namespaces", {"namespace": "from-basic"}, format="json")
    # then
    assert response.status_code == 201, response.content
    assert Namespace.objects.filter(namespace="from-basic").exists()


def test_operator_basic_auth_with_a_wrong_password_is_refused(operator_user):
    # given
    credentials = base64.b64encode(b"operator:wrong").decode()
    # when
    response = _client(f"Basic {credentials}").get("/api/v2/namespaces")
    # then
    assert response.status_code == 401


def test_operator_bearer_key_from_create_operator_key_works(operator_user):
    # given
    out = StringIO()
    call_command("create_operator_key", "operator", "--name", "ci", stdout=out)
    key = re.search(r"(tmws_\S+)", out.getvalue()).group(1)
    client = _client(f"Bearer {key}")
    # when
    created = client.post("/api/v2/namespaces", {"namespace": "from-key"}, format="json")
    # then
    assert created.status_code == 201, created.content
    assert operator_user.api_keys.get().name == "ci"


@pytest.mark.django_db
def test_create_operator_key_refuses_non_staff_users(django_user_model):
    # given
    django_user_model.objects.create_user("plain", password="x-long-password")
    # when / then
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No operator"):
        call_command("create_operator_key", "plain", stdout=StringIO())


@pytest.mark.django_db
def test_create_agent_registers_an_agent_as_the_system_and_its_key_works():
    # when: its home namespace does not exist yet, and it is to be an admin agent
    out = StringIO()
    call_command("create_agent", "cli-bot", "--namespace", "cli-team", "--admin", "--capabilities", '{"search": true}',
                 "--json", stdout=out, stderr=StringIO())
    # then
    import json

    printed = json.loads(out.getvalue())
    agent = Agent.objects.get(agent_id="cli-bot")
    assert (printed["agent_id"], agent.namespace.namespace, agent.access_level, agent.capabilities) == (
        "cli-bot", "cli-team", "admin", {"search": True})
    assert Namespace.objects.get(namespace="cli-team").access_policy == "invite_only"
    me = _client(f"Bearer {printed['api_key']}").get("/api/v2/agents/me")
    assert me.status_code == 200 and me.json()["agent_id"] == "cli-bot"


@pytest.mark.django_db
def test_create_agent_refuses_bad_input_naming_it():
    # when / then
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="agent_id is 129 characters; the limit is 128."):
        call_command("create_agent", "a" * 129, "--namespace", "cli-team", stdout=StringIO(), stderr=StringIO())
    assert not Agent.objects.exists()
