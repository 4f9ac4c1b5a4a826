"""The audit trail keeps no content, cannot be changed by agents (or by anyone), and records no refused action."""
from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

import audit
from access import SYSTEM
from audit.models import AuditEntry
from memories.contracts import StoreMemory
from memories.models import Memory
from memories.services import create_memory
from tests.access.test_rls import inside_agent_context

from .conftest import SECRET, entries_since, mark

pytestmark = pytest.mark.django_db

SECRET_PARTS = ("zebra-quartz-7731", "4471", "vault")


def _rows_mentioning(table: str, text: str) -> int:
    """Rows of `table` whose whole text (every column, JSON included) contains `text`, by raw SQL."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} row WHERE row::text ILIKE %s", [f"%{text}%"])
        return cursor.fetchone()[0]


def _entries() -> list[tuple]:
    return list(AuditEntry.objects.order_by("id").values_list("id", "actor", "action", "object_id", "before", "after"))


def test_no_memory_content_reaches_the_audit_trail_or_the_admin_log(team, secret_memory, superuser_client):
    # given: a second memory with the same content, changed and deleted in the admin
    owner = team["owner"]
    in_admin = create_memory(owner.agent, StoreMemory.parse({"content": SECRET, "access_level": "shared"}))
    since = mark()
    # when: shared, un-shared, taken private, restored and deleted through the API ...
    path = f"/api/v2/memories/{secret_memory.pk}"
    statuses = [
        owner.client.post(f"{path}/share", {"agent_ids": ["sharee-agent"]}, format="json").status_code,
        owner.client.delete(f"{path}/share", {"agent_ids": ["sharee-agent"]}, format="json").status_code,
        owner.client.patch(path, {"access_level": "private", "content": SECRET + " (draft)"}, format="json").status_code,
        owner.client.post(f"{path}/restore", {"version": 1}, format="json").status_code,
        owner.client.delete(path).status_code,
    ]
    # ... and changed and deleted in the admin
    form = {"memory_category": "general", "access_level": "public", "context_tags": '["vault"]',
            "learning_weight": "1.0", "metadata": "{}", "content": SECRET, "namespace": owner.agent.namespace_id}
    statuses.append(superuser_client.post(reverse("admin:memories_memory_change", args=[in_admin.pk]), form).status_code)
    statuses.append(superuser_client.post(reverse("admin:memories_memory_delete", args=[in_admin.pk]),
                                          {"post": "yes"}).status_code)
    # then
    assert statuses == [200, 200, 200, 200, 204, 302, 302]
    assert [entry["action"] for entry in entries_since(since)] == [
        "memory.share", "memory.unshare", "memory.restore", "memory.delete", "admin.change", "admin.delete",
        "memory.delete",
    ]
    assert not Memory.objects.filter(pk__in=[secret_memory.pk, in_admin.pk]).exists()
    for part in SECRET_PARTS:
        assert _rows_mentioning("audit_entries", part) == 0, part
        assert _rows_mentioning("django_admin_log", part) == 0, part
    assert LogEntry.objects.filter(object_id=str(in_admin.pk)).count() == 2


@pytest.mark.parametrize("statement", [
    "SELECT * FROM audit_entries",
    "UPDATE audit_entries SET actor = 'someone-else'",
    "DELETE FROM audit_entries",
    "TRUNCATE audit_entries",
    "INSERT INTO audit_entries (at, actor, actor_kind, action, object_type, object_id, namespace_path, request_id)"
    " VALUES (now(), 'forged', 'operator', 'memory.delete', '', '', '', '')",
    "SELECT nextval('audit_entries_id_seq')",
])
def test_the_agent_role_can_neither_read_nor_write_nor_erase_entries(team, secret_memory, statement):
    # given
    team["owner"].client.post(f"/api/v2/memories/{secret_memory.pk}/share", {"agent_ids": ["sharee-agent"]},
                              format="json")
    before = _entries()
    # when: raw SQL under the agent role, in an agent's row-level-security context
    with pytest.raises(DatabaseError, match="permission denied"):
        with inside_agent_context(team["admin"].agent) as cursor:
            cursor.execute(statement)
    # then
    assert _entries() == before


@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET after = NULL",
    "DELETE FROM audit_entries",
])
def test_entries_are_append_only_for_the_service_role_too(team, statement):
    # given
    before = _entries()
    assert before
    # when
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    # then
    assert _entries() == before


def test_an_agent_request_still_records_through_the_service_role(team, secret_memory):
    # given: deleting runs as the agent role, which holds no grant on the table
    since = mark()
    # when
    response = team["owner"].client.delete(f"/api/v2/memories/{secret_memory.pk}")
    # then
    assert response.status_code == 204
    assert [(entry["actor"], entry["action"]) for entry in entries_since(since)] == [("owner-agent", "memory.delete")]


REFUSED = [
    # (who, method, path, body, status)
    ("member", "post", "/api/v2/memories/{memory}/share", {"agent_ids": ["sharee-agent"]}, 403),
    ("outsider", "post", "/api/v2/memories/{memory}/share", {"agent_ids": ["sharee-agent"]}, 404),
    ("owner", "post", "/api/v2/memories/{memory}/share", {"agent_ids": ["nobody-agent"]}, 400),
    ("member", "delete", "/api/v2/memories/{memory}/share", {"agent_ids": ["sharee-agent"]}, 403),
    ("member", "post", "/api/v2/memories/{memory}/restore", {"version": 1}, 403),
    ("owner", "post", "/api/v2/memories/{memory}/restore", {"version": 7}, 404),
    ("member", "delete", "/api/v2/memories/{memory}", None, 403),
    ("member", "post", "/api/v2/namespaces/team/members", {"agent_id": "outsider-agent"}, 403),
    ("member", "delete", "/api/v2/namespaces/team/members/ns-admin-agent", None, 403),
    ("owner", "delete", "/api/v2/namespaces/team/members/owner-agent", None, 400),
    ("outsider", "post", "/api/v2/namespaces/team/join", None, 404),
    ("admin", "post", "/api/v2/agents/owner-agent/rotate-key", None, 403),
    ("member", "delete", "/api/v2/agents/owner-agent", None, 403),
    ("member", "patch", "/api/v2/agents/owner-agent", {"display_name": "Mine"}, 403),
    ("member", "post", "/api/v2/namespaces", {"namespace": "annex", "parent_namespace": "team"}, 403),
    ("member", "patch", "/api/v2/namespaces/team", {"access_policy": "open"}, 403),
    ("member", "delete", "/api/v2/namespaces/team", None, 403),
]


@pytest.mark.parametrize("who, method, path, body, status", REFUSED)
def test_a_refused_action_writes_no_entry(team, secret_memory, who, method, path, body, status):
    # given
    before = _entries()
    client = team[who].client
    # when
    response = getattr(client, method)(path.format(memory=secret_memory.pk), body, format="json")
    # then
    assert response.status_code == status, response.content
    assert _entries() == before


@pytest.mark.parametrize("details", [
    {"before": {"content": "x"}},
    {"after": {"state": {"content": "x"}}},
    {"after": {"changes": [{"content": "x"}]}},
])
def test_record_refuses_an_entry_that_holds_content(team, secret_memory, details):
    # given
    before = _entries()
    # when
    with pytest.raises(ValueError, match="never holds 'content'"):
        audit.record(SYSTEM, audit.AuditAction.MEMORY_MERGE, obj=secret_memory, **details)
    # then
    assert _entries() == before


def test_actions_named_for_later_work_are_recordable_now(team, secret_memory):
    # given
    since = mark()
    # when: what merges, purges, imports and exports will record
    for action in ("memory.merge", "agent.purge", "memories.import", "memories.export"):
        audit.record(SYSTEM, action, obj=secret_memory, after={"memory_ids": [str(secret_memory.pk)]})
    # then
    assert [(e["actor_kind"], e["action"], e["namespace_path"]) for e in entries_since(since)] == [
        ("system", "memory.merge", "company/team"), ("system", "agent.purge", "company/team"),
        ("system", "memories.import", "company/team"), ("system", "memories.export", "company/team"),
    ]
    with pytest.raises(ValueError):
        audit.record(SYSTEM, "memory.eat", obj=secret_memory)
