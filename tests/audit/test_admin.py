"""Every add, change and delete in the admin is in the audit trail, by field name, never by value."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.urls import reverse

from agents.models import ApiKey
from audit.admin_log import AuditedAdminMixin
from memories.contracts import StoreMemory
from memories.services import create_memory
from namespaces.models import Namespace

from .conftest import SECRET, entries_since, mark

pytestmark = pytest.mark.django_db

MEMORY_FORM = {"memory_category": "general", "access_level": "shared", "context_tags": "[]", "learning_weight": "1.0",
               "metadata": "{}"}


def test_every_admin_page_on_the_site_is_audited():
    # then: the project's pages and Django's own (users, groups)
    registered = admin.site._registry
    assert len(registered) > 5
    assert [type(page).__name__ for page in registered.values() if not isinstance(page, AuditedAdminMixin)] == []
    assert {"UserAdmin", "GroupAdmin", "MemoryAdmin", "NamespaceAdmin"} <= {type(p).__name__ for p in registered.values()}


def test_a_memory_changed_in_the_admin_names_the_changed_fields_only(team, secret_memory, superuser_client):
    # given
    since = mark()
    # when
    response = superuser_client.post(
        reverse("admin:memories_memory_change", args=[secret_memory.pk]),
        {**MEMORY_FORM, "content": SECRET, "access_level": "public", "context_tags": '["vault", "kept"]',
         "namespace": secret_memory.namespace_id},
    )
    # then: the fields the form counts as changed, as Django's own change message names them (this form counts its
    # metadata as changed); the content, unchanged, is not among them, and no value is kept
    assert response.status_code == 302
    assert entries_since(since) == [{
        "actor": "operator:operator", "actor_kind": "operator", "action": "admin.change",
        "object_type": "memories.memory", "object_id": str(secret_memory.pk), "namespace_path": "company/team",
        "before": None, "after": {"fields": ["access_level", "context_tags", "metadata"]},
    }]
    logged = LogEntry.objects.get(object_id=str(secret_memory.pk))
    assert logged.object_repr == f"memory {secret_memory.pk}"


def test_a_memory_the_service_refuses_in_the_admin_writes_no_entry(team, superuser_client):
    # given
    since = mark()
    # when: a non-system memory without an owner
    response = superuser_client.post(
        reverse("admin:memories_memory_add"),
        {**MEMORY_FORM, "content": "Nobody owns this.", "namespace": team["owner"].agent.namespace_id},
    )
    # then
    assert response.status_code == 200
    assert entries_since(since) == []


def test_memories_deleted_in_bulk_in_the_admin_are_each_recorded(team, superuser_client):
    # given
    owner = team["owner"].agent
    memories = [create_memory(owner, StoreMemory.parse({"content": f"Note {n}.", "access_level": "shared"}))
                for n in range(2)]
    since = mark()
    # when
    response = superuser_client.post(reverse("admin:memories_memory_changelist"), {
        "action": "delete_selected", "_selected_action": [m.pk for m in memories], "post": "yes"})
    # then
    assert response.status_code == 302
    entries = entries_since(since)
    assert sorted((e["action"], e["object_id"]) for e in entries) == sorted(
        [("admin.delete", str(m.pk)) for m in memories] + [("memory.delete", str(m.pk)) for m in memories])
    assert {e["namespace_path"] for e in entries} == {"company/team"}


def test_a_namespace_added_in_the_admin_is_recorded_by_the_service_and_the_admin(team, superuser_client):
    # given
    since = mark()
    parent = Namespace.objects.get(namespace="team")
    # when
    response = superuser_client.post(reverse("admin:namespaces_namespace_add"), {
        "namespace": "annex", "display_name": "", "description": "Secret plans.", "access_policy": "invite_only",
        "parent": parent.pk, "metadata": "{}"})
    # then
    assert response.status_code == 302, response.content
    annex = Namespace.objects.get(namespace="annex")
    assert [(e["action"], e["object_id"], e["namespace_path"]) for e in entries_since(since)] == [
        ("namespace.create", str(annex.pk), "company/team/annex"),
        ("admin.add", str(annex.pk), "company/team/annex"),
    ]
    assert "Secret plans" not in str(entries_since(since))


def test_djangos_own_pages_are_recorded_outside_any_namespace(superuser_client):
    # given
    since = mark()
    # when
    added = superuser_client.post(reverse("admin:auth_group_add"), {"name": "auditors"})
    group = Group.objects.get(name="auditors")
    changed = superuser_client.post(reverse("admin:auth_group_change", args=[group.pk]), {"name": "readers"})
    deleted = superuser_client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    # then
    assert (added.status_code, changed.status_code, deleted.status_code) == (302, 302, 302)
    assert [(e["action"], e["object_type"], e["object_id"], e["namespace_path"], e["after"])
            for e in entries_since(since)] == [
        ("admin.add", "auth.group", str(group.pk), "", {"fields": ["name"]}),
        ("admin.change", "auth.group", str(group.pk), "", {"fields": ["name"]}),
        ("admin.delete", "auth.group", str(group.pk), "", None),
    ]


def test_members_added_on_the_admins_members_page_are_recorded(team, superuser_client):
    # given
    since = mark()
    squad = Namespace.objects.get(namespace="squad")
    # when
    response = superuser_client.post(reverse("admin:namespaces_namespace_members", args=[squad.pk]),
                                     {"add": "Save", "agent_id": "outsider-agent", "role": "admin"})
    # then
    assert response.status_code == 302
    assert [(e["actor"], e["action"], e["namespace_path"], e["after"]) for e in entries_since(since)] == [
        ("operator:operator", "namespace.member_add", "company/team/squad",
         {"agent_id": "outsider-agent", "role": "admin"}),
    ]


def test_keys_revoked_in_the_admin_are_recorded_one_by_one(team, superuser_client):
    # given
    keys = [ApiKey.objects.get(user=team[who].agent.user) for who in ("owner", "outsider")]
    since = mark()
    # when
    response = superuser_client.post(reverse("admin:agents_apikey_changelist"),
                                     {"action": "revoke", "_selected_action": [key.pk for key in keys]})
    # then
    assert response.status_code == 302
    revoked = [(e["action"], e["object_id"], e["namespace_path"], e["before"]["key"]) for e in entries_since(since)]
    assert sorted(revoked) == sorted([
        ("agent.key_revoke", str(team["owner"].agent.pk), "company/team", str(keys[0])),
        ("agent.key_revoke", str(team["outsider"].agent.pk), "other", str(keys[1])),
    ])
    assert ApiKey.objects.filter(pk__in=[key.pk for key in keys], revoked_at__isnull=True).count() == 0


def test_operator_rights_granted_and_revoked_in_the_admin_are_recorded(team, superuser_client, django_user_model):
    # given
    operator = django_user_model.objects.create_user("new-op", password="unused-pass-123!", is_staff=True)
    team_ns = Namespace.objects.get(namespace="team")
    url = reverse("admin:namespaces_namespace_permissions_manage_user", args=[team_ns.pk, operator.pk])
    since = mark()
    # when
    granted = superuser_client.post(url, {"permissions": ["view_namespace", "change_namespace"]})
    same = superuser_client.post(url, {"permissions": ["view_namespace", "change_namespace"]})
    narrowed = superuser_client.post(url, {"permissions": ["view_namespace"]})
    # then
    assert (granted.status_code, same.status_code, narrowed.status_code) == (302, 302, 302)

    def entry(before, after):
        return {"actor": "operator:operator", "actor_kind": "operator", "action": "namespace.operator_rights",
                "object_type": "auth.user", "object_id": str(operator.pk), "namespace_path": "company/team",
                "before": {"user": "new-op", "permissions": before}, "after": {"user": "new-op", "permissions": after}}

    assert entries_since(since) == [
        entry([], ["change_namespace", "view_namespace"]),
        entry(["change_namespace", "view_namespace"], ["view_namespace"]),
    ]
