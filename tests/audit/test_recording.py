"""Each action the services perform writes one audit entry, in its transaction, with exactly these fields."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from access import SYSTEM
from agents.contracts import IssueOperatorKey, UpdateAgent
from agents.models import ApiKey
from agents.services import issue_operator_key, update_agent
from memories.contracts import UpdateMemory
from memories.services import update_memory
from namespaces.models import Namespace

from .conftest import entries_since, mark

pytestmark = pytest.mark.django_db


def _memory_entry(actor, kind, action, memory, before, after, path="company/team") -> dict:
    return {"actor": actor, "actor_kind": kind, "action": action, "object_type": "memories.memory",
            "object_id": str(memory.pk), "namespace_path": path, "before": before, "after": after}


def test_sharing_and_unsharing_record_who_now_reads_the_memory(team, secret_memory):
    # given
    since = mark()
    owner = team["owner"].client
    # when
    shared = owner.post(f"/api/v2/memories/{secret_memory.pk}/share", {"agent_ids": ["sharee-agent"]}, format="json")
    unshared = owner.delete(f"/api/v2/memories/{secret_memory.pk}/share", {"agent_ids": ["sharee-agent"]}, format="json")
    # then
    assert (shared.status_code, unshared.status_code) == (200, 200)
    assert entries_since(since) == [
        _memory_entry("owner-agent", "agent", "memory.share", secret_memory,
                      {"shared_with": []}, {"shared_with": ["sharee-agent"]}),
        _memory_entry("owner-agent", "agent", "memory.unshare", secret_memory,
                      {"shared_with": ["sharee-agent"]}, {"shared_with": []}),
    ]


def test_sharing_with_an_agent_that_reads_it_already_records_nothing(team, secret_memory):
    # given
    owner = team["owner"].client
    owner.post(f"/api/v2/memories/{secret_memory.pk}/share", {"agent_ids": ["sharee-agent"]}, format="json")
    since = mark()
    # when
    again = owner.post(f"/api/v2/memories/{secret_memory.pk}/share", {"agent_ids": ["sharee-agent"]}, format="json")
    # then
    assert again.status_code == 200
    assert entries_since(since) == []


def test_a_restore_records_the_version_and_the_states_without_content(team, secret_memory):
    # given: version 2 is private
    owner = team["owner"].agent
    update_memory(owner, secret_memory, UpdateMemory.parse({"access_level": "private", "context_tags": []}))
    since = mark()
    # when
    response = team["owner"].client.post(f"/api/v2/memories/{secret_memory.pk}/restore", {"version": 1}, format="json")
    # then
    assert response.status_code == 200, response.content
    assert entries_since(since) == [_memory_entry(
        "owner-agent", "agent", "memory.restore", secret_memory,
        {"access_level": "private", "namespace": "company/team", "owner": "owner-agent", "tags_count": 0,
         "retired": False},
        {"restored_version": 1, "access_level": "shared", "namespace": "company/team", "owner": "owner-agent",
         "tags_count": 1},
    )]


def test_a_delete_records_the_ids_and_the_state_it_had(team, secret_memory):
    # given
    since = mark()
    # when
    response = team["owner"].client.delete(f"/api/v2/memories/{secret_memory.pk}")
    # then
    assert response.status_code == 204
    assert entries_since(since) == [_memory_entry(
        "owner-agent", "agent", "memory.delete", secret_memory,
        {"access_level": "shared", "namespace": "company/team", "owner": "owner-agent", "tags_count": 1}, None,
    )]


def test_membership_add_role_change_and_removal_are_recorded(team, operator_client):
    # given
    since = mark()
    outsider = team["outsider"].agent
    # when
    added = operator_client.post("/api/v2/namespaces/team/members", {"agent_id": "outsider-agent"}, format="json")
    promoted = operator_client.post("/api/v2/namespaces/team/members",
                                    {"agent_id": "outsider-agent", "role": "admin"}, format="json")
    removed = operator_client.delete("/api/v2/namespaces/team/members/outsider-agent")
    # then
    assert (added.status_code, promoted.status_code, removed.status_code) == (201, 201, 204)

    def entry(action, before, after):
        return {"actor": "operator:operator", "actor_kind": "operator", "action": action,
                "object_type": "agents.agent", "object_id": str(outsider.pk), "namespace_path": "company/team",
                "before": {"agent_id": "outsider-agent", "role": before},
                "after": {"agent_id": "outsider-agent", "role": after}}

    assert entries_since(since) == [
        entry("namespace.member_add", None, "member"),
        entry("namespace.role_change", "member", "admin"),
        entry("namespace.member_remove", "admin", None),
    ]


def test_an_agent_joining_an_open_namespace_is_recorded_as_itself(team, make_namespace):
    # given
    lounge = make_namespace("lounge", policy="open")
    since = mark()
    # when
    response = team["outsider"].client.post("/api/v2/namespaces/lounge/join")
    # then
    assert response.status_code == 200
    assert entries_since(since) == [{
        "actor": "outsider-agent", "actor_kind": "agent", "action": "namespace.member_add",
        "object_type": "agents.agent", "object_id": str(team["outsider"].agent.pk), "namespace_path": lounge.path,
        "before": {"agent_id": "outsider-agent", "role": None}, "after": {"agent_id": "outsider-agent", "role": "member"},
    }]


def test_a_key_rotation_names_the_new_key_never_its_secret(team):
    # given
    since = mark()
    handle = team["owner"]
    # when
    response = handle.client.post("/api/v2/agents/owner-agent/rotate-key")
    # then
    assert response.status_code == 200
    new_key = ApiKey.objects.get(user=handle.agent.user, revoked_at__isnull=True)
    assert entries_since(since) == [{
        "actor": "owner-agent", "actor_kind": "agent", "action": "agent.key_rotate", "object_type": "agents.agent",
        "object_id": str(handle.agent.pk), "namespace_path": "company/team",
        "before": {"active_keys": 1}, "after": {"active_keys": 1, "key": f"tmws_{new_key.lookup}_…"},
    }]
    secret = response.json()["api_key"].rsplit("_", 1)[1]
    assert secret not in str(entries_since(since))


def test_retiring_an_agent_is_recorded(team, operator_client):
    # given
    since = mark()
    # when
    response = operator_client.delete("/api/v2/agents/member-agent")
    # then
    assert response.status_code == 204
    assert entries_since(since) == [{
        "actor": "operator:operator", "actor_kind": "operator", "action": "agent.retire",
        "object_type": "agents.agent", "object_id": str(team["member"].agent.pk), "namespace_path": "company/team",
        "before": {"is_active": True, "active_keys": 1}, "after": {"is_active": False, "active_keys": 0},
    }]


def test_an_operator_key_issued_by_the_command_is_recorded_as_the_systems(db):
    # given
    user = get_user_model().objects.create_user("script-owner", is_staff=True)
    since = mark()
    # when
    issue_operator_key(user, IssueOperatorKey.parse({"name": "nightly"}))
    # then
    key = ApiKey.objects.get(user=user)
    assert entries_since(since) == [{
        "actor": None, "actor_kind": "system", "action": "agent.key_issue", "object_type": "auth.user",
        "object_id": str(user.pk), "namespace_path": "", "before": None,
        "after": {"key": f"tmws_{key.lookup}_…", "name": "nightly"},
    }]


def test_registering_and_changing_an_agent_are_recorded(team, operator_client):
    # given
    since = mark()
    # when
    created = operator_client.post("/api/v2/agents", {"agent_id": "new-agent", "namespace": "squad"}, format="json")
    agent = update_agent(SYSTEM, team["member"].agent, UpdateAgent.parse(
        {"access_level": "admin", "capabilities": {"secret-skill": True}}))
    # then
    assert created.status_code == 201
    registered, changed = entries_since(since)
    key = ApiKey.objects.get(user__agent__agent_id="new-agent")
    assert registered == {
        "actor": "operator:operator", "actor_kind": "operator", "action": "agent.register",
        "object_type": "agents.agent", "object_id": created.json()["id"], "namespace_path": "company/team/squad",
        "before": None, "after": {"agent_id": "new-agent", "namespace": "company/team/squad", "access_level": "standard",
                                  "is_active": True, "key": f"tmws_{key.lookup}_…"},
    }
    assert changed == {
        "actor": None, "actor_kind": "system", "action": "agent.update", "object_type": "agents.agent",
        "object_id": str(agent.pk), "namespace_path": "company/team",
        "before": {"agent_id": "member-agent", "namespace": "company/team", "access_level": "standard", "is_active": True},
        "after": {"agent_id": "member-agent", "namespace": "company/team", "access_level": "admin", "is_active": True,
                  "fields": ["access_level", "capabilities"]},
    }


def test_namespaces_created_changed_and_deleted_are_recorded(team, operator_client):
    # given
    since = mark()
    # when
    created = operator_client.post("/api/v2/namespaces", {"namespace": "annex", "parent_namespace": "team"}, format="json")
    namespace_id = created.json()["id"]
    changed = operator_client.patch("/api/v2/namespaces/annex", {"access_policy": "closed"}, format="json")
    deleted = operator_client.delete("/api/v2/namespaces/annex")
    # then
    assert (created.status_code, changed.status_code, deleted.status_code) == (201, 200, 204)
    state = {"namespace": "annex", "path": "company/team/annex"}

    def entry(action, before, after):
        return {"actor": "operator:operator", "actor_kind": "operator", "action": action,
                "object_type": "namespaces.namespace", "object_id": namespace_id,
                "namespace_path": "company/team/annex", "before": before, "after": after}

    assert entries_since(since) == [
        entry("namespace.create", None, {**state, "access_policy": "invite_only", "admin": None}),
        entry("namespace.update", {**state, "access_policy": "invite_only"},
              {**state, "access_policy": "closed", "fields": ["access_policy"]}),
        entry("namespace.delete", {**state, "access_policy": "closed"}, None),
    ]
    assert not Namespace.objects.filter(namespace="annex").exists()


def test_an_agent_that_creates_a_namespace_is_named_as_its_admin(team):
    # given
    since = mark()
    # when: the namespace admin of `team` creates a child
    response = team["ns_admin"].client.post("/api/v2/namespaces", {"namespace": "den", "parent_namespace": "team"},
                                            format="json")
    # then
    assert response.status_code == 201, response.content
    assert [(e["actor"], e["action"], e["after"]) for e in entries_since(since)] == [
        ("ns-admin-agent", "namespace.create", {"namespace": "den", "path": "company/team/den",
                                                "access_policy": "invite_only", "admin": "ns-admin-agent"}),
    ]


def test_an_admin_agent_deleting_a_namespace_is_recorded_and_the_delete_still_runs_as_the_service(team, make_namespace):
    # given: the entry is written before the namespace is deleted, both past the agent role's grants
    annex = make_namespace("annex")
    since = mark()
    # when
    response = team["admin"].client.delete("/api/v2/namespaces/annex")
    # then
    assert response.status_code == 204, response.content
    assert not Namespace.objects.filter(pk=annex.pk).exists()
    assert [(e["actor"], e["action"], e["object_id"]) for e in entries_since(since)] == [
        ("admin-agent", "namespace.delete", str(annex.pk))]
