"""Agents in the admin: creation through the service, keys shown once and stored hashed, rotation, revocation."""
from __future__ import annotations

import hashlib
import re

import pytest
from django.urls import reverse

from agents.models import Agent, ApiKey

KEY_PATTERN = re.compile(r"tmws_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


def _keys_in(response) -> list[tuple[str, str]]:
    return KEY_PATTERN.findall(response.content.decode())


def test_creating_an_agent_shows_its_key_once_and_stores_only_the_hash(superuser_client, team):
    # when
    response = superuser_client.post(
        reverse("admin:agents_agent_add"),
        {"agent_id": "scribe-agent", "display_name": "Scribe", "agent_type": "language_model",
         "namespace": team["owner"].agent.namespace_id, "access_level": "standard", "is_active": "on",
         "capabilities": "{}", "configuration": "{}", "metadata": "{}"},
        follow=True,
    )
    # then: the key is in the message on the page the operator lands on, and nowhere afterwards
    assert response.status_code == 200
    keys = _keys_in(response)
    assert len(keys) == 1
    lookup, secret = keys[0]
    agent = Agent.objects.get(agent_id="scribe-agent")
    stored = ApiKey.objects.get(user=agent.user)
    assert (stored.lookup, stored.hashed_secret) == (lookup, hashlib.sha256(secret.encode()).hexdigest())
    assert secret not in (stored.hashed_secret, stored.name, stored.lookup)
    again = superuser_client.get(reverse("admin:agents_agent_change", args=[agent.pk]))
    assert secret not in again.content.decode()
    assert superuser_client.get(reverse("admin:agents_agent_changelist")).content.decode().count(secret) == 0
    # and the agent is a member of its home namespace, as the service makes it
    assert agent.user.has_perm("namespaces.member_namespace", agent.namespace)


def test_the_new_key_authenticates_the_agent(superuser_client, team):
    # given
    response = superuser_client.post(
        reverse("admin:agents_agent_add"),
        {"agent_id": "scribe-agent", "agent_type": "language_model", "namespace": team["owner"].agent.namespace_id,
         "access_level": "standard", "is_active": "on", "capabilities": "{}", "configuration": "{}", "metadata": "{}"},
        follow=True,
    )
    lookup, secret = _keys_in(response)[0]
    # when
    me = superuser_client.get("/api/v2/agents/me", HTTP_AUTHORIZATION=f"Bearer tmws_{lookup}_{secret}")
    # then
    assert me.status_code == 200
    assert me.json()["agent_id"] == "scribe-agent"


def test_a_refused_registration_shows_on_the_form_and_creates_nothing(superuser_client, team):
    # when: the agent id is taken
    response = superuser_client.post(
        reverse("admin:agents_agent_add"),
        {"agent_id": "owner-agent", "agent_type": "language_model", "namespace": team["owner"].agent.namespace_id,
         "access_level": "standard", "capabilities": "{}", "configuration": "{}", "metadata": "{}"},
    )
    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["agent_id"]
    assert _keys_in(response) == []
    assert Agent.objects.filter(agent_id="owner-agent").count() == 1


def test_changing_an_agent_goes_through_the_service(superuser_client, team):
    # given
    agent = team["member"].agent
    other = team["outsider"].agent.namespace
    # when
    response = superuser_client.post(
        reverse("admin:agents_agent_change", args=[agent.pk]),
        {"display_name": "Renamed", "agent_type": "language_model", "namespace": other.pk, "access_level": "standard",
         "is_active": "on", "capabilities": '{"code": true}', "configuration": "{}", "metadata": "{}"},
    )
    # then
    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.display_name, agent.namespace, agent.capabilities) == ("Renamed", other, {"code": True})
    assert agent.user.has_perm("namespaces.member_namespace", other)


def test_rotate_action_revokes_old_keys_and_shows_each_new_key_once(superuser_client, team):
    # given
    agents = [team["owner"], team["member"]]
    # when
    response = superuser_client.post(
        reverse("admin:agents_agent_changelist"),
        {"action": "rotate_keys", "_selected_action": [h.agent.pk for h in agents]},
        follow=True,
    )
    # then
    keys = dict(_keys_in(response))
    assert len(keys) == 2
    for handle in agents:
        assert ApiKey.objects.filter(user=handle.agent.user, revoked_at__isnull=True).count() == 1
        active = ApiKey.objects.get(user=handle.agent.user, revoked_at__isnull=True)
        assert active.hashed_secret == hashlib.sha256(keys[active.lookup].encode()).hexdigest()
        assert handle.client.get("/api/v2/agents/me").status_code == 401


def test_deactivate_action_retires_agents_and_revokes_their_keys(superuser_client, team):
    # given
    handle = team["member"]
    # when
    superuser_client.post(
        reverse("admin:agents_agent_changelist"), {"action": "deactivate", "_selected_action": [handle.agent.pk]}
    )
    # then
    handle.agent.refresh_from_db()
    assert handle.agent.is_active is False
    assert ApiKey.objects.filter(user=handle.agent.user, revoked_at__isnull=True).count() == 0
    assert team["owner"].client.get("/api/v2/agents/me").status_code == 200


def test_revoke_action_on_keys(superuser_client, team):
    # given
    key = ApiKey.objects.get(user=team["member"].agent.user)
    # when
    superuser_client.post(reverse("admin:agents_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    # then
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert team["member"].client.get("/api/v2/agents/me").status_code == 401
    assert team["owner"].client.get("/api/v2/agents/me").status_code == 200


@pytest.mark.parametrize("method", ["get", "post"])
def test_agents_cannot_be_deleted_only_deactivated(superuser_client, team, method):
    # when
    response = getattr(superuser_client, method)(reverse("admin:agents_agent_delete", args=[team["member"].agent.pk]))
    # then
    assert response.status_code == 403
    assert Agent.objects.filter(pk=team["member"].agent.pk).exists()
