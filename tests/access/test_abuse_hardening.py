"""A hostile agent against the service: hostile stored metadata, deletes blocked by hidden rows,
500s on bad input, and the reach of the agent database role (issue cases 7-10).

Every test asserts the exact outcome and that nothing changed. Hostile metadata is planted in the
database directly (as the system), since agents may not write the importer-owned keys themselves.
"""
from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, connection

from agents.models import Agent
from compat import tools as persona_tools
from compat.adapter import learning_weight_to_importance
from memories.models import Memory
from memories.services import create_memory
from namespaces.models import Namespace
from tmws_site.db import agent_context
from workflows.models import Workflow

from .test_hostile_input import stored_counts as principal_and_memory_counts
from .test_rls import inside_agent_context

pytestmark = pytest.mark.django_db


def stored_counts() -> dict:
    return {**principal_and_memory_counts(), "workflows": Workflow.objects.count()}


def all_memories() -> list[dict]:
    return list(Memory.objects.order_by("pk").values(
        "pk", "content", "access_level", "namespace_id", "agent_id", "metadata", "parent_memory_id",
        "learning_weight", "updated_at",
    ))


def assert_error_shape(response, status: int, field: str) -> None:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error) == {"code", "message", "fields"}
    assert list(error["fields"]) == [field]


# --- case 7: hostile metadata must not take API v1 down -------------------------------------------

HOSTILE_LEGACY = [
    pytest.param({"importance": "high"}, id="importance-string"),
    pytest.param(5, id="legacy-number"),
    pytest.param("legacy", id="legacy-string"),
    pytest.param(["importance", 1], id="legacy-list"),
    pytest.param({"importance": [0.5], "recall_count": "many"}, id="importance-list-recall-string"),
    pytest.param({"importance": True, "recall_count": -3}, id="importance-bool-recall-negative"),
]


@pytest.mark.parametrize("legacy", HOSTILE_LEGACY)
@pytest.mark.parametrize("principal", ["owner", "outsider", "operator"])
def test_case07_hostile_legacy_metadata_leaves_v1_memory_list_and_search_answering(world, principal, legacy):
    # given: one public memory carries an unparseable persona-era record
    public = world.memories["public"]
    Memory.objects.filter(pk=public.pk).update(metadata={"legacy": legacy, "note": "kept"})
    before = all_memories()
    client = world.clients[principal]
    # when
    listing = client.get("/api/v1/memory", {"limit": 100})
    search = client.post("/api/v1/memory/search", {"query": "sentences", "mode": "keyword"}, format="json")
    detail = client.get(f"/api/v1/memory/{public.pk}")
    # then: 200 everywhere, the bad values ignored (importance derived from the weight, no recalls)
    assert listing.status_code == 200, listing.content
    assert search.status_code == 200, search.content
    assert detail.status_code == 200, detail.content
    shown = {item["id"]: item for item in listing.json()["items"]}[str(public.pk)]
    found = {item["id"]: item for item in search.json()["results"]}
    assert list(found) == [str(public.pk)]
    for item in (shown, found[str(public.pk)], detail.json()):
        assert item["importance"] == learning_weight_to_importance(public.learning_weight)
        assert item["recall_count"] == 0
        assert item["metadata"] == {"note": "kept"}
    assert all_memories() == before


@pytest.mark.parametrize(
    "persona",
    [
        pytest.param({"total_tasks": "lots"}, id="total-tasks-string"),
        pytest.param({"total_tasks": [1], "successful_tasks": {"n": 1}, "average_response_time": "slow",
                      "preferences": "none", "metadata": 3, "id": ["x"], "last_active_at": {"at": 1},
                      "description": 7}, id="every-field-wrong"),
        pytest.param("persona", id="persona-string"),
        pytest.param(7, id="persona-number"),
    ],
)
def test_case07_hostile_persona_metadata_leaves_v1_personas_answering(world, persona):
    # given: an agent's own persona record holds values that do not parse, and odd capabilities
    owner = world.cast["owner"].agent
    Agent.objects.filter(pk=owner.pk).update(
        metadata={"persona": persona}, capabilities={"specialties": 5, "persona_type": ["athena"]}
    )
    before = list(Agent.objects.order_by("pk").values("pk", "metadata", "capabilities", "updated_at"))
    # when
    statuses = {
        (name, path): world.clients[name].get(path).status_code
        for name in ("owner", "outsider", "operator")
        for path in ("/api/v1/personas", "/api/v1/personas/owner-agent", "/api/v1/personas/owner-agent/stats")
    }
    listing = world.clients["outsider"].get("/api/v1/personas")
    detail = world.clients["outsider"].get("/api/v1/personas/owner-agent")
    stats = world.clients["outsider"].get("/api/v1/personas/owner-agent/stats")
    # then
    assert set(statuses.values()) == {200}, statuses
    assert listing.status_code == detail.status_code == stats.status_code == 200
    shown = {item["name"]: item for item in listing.json()["items"]}["owner-agent"]
    for item in (shown, detail.json()):
        assert item["id"] == str(owner.pk)
        assert (item["total_tasks"], item["successful_tasks"], item["average_response_time"]) == (0, 0, None)
        assert (item["preferences"], item["metadata"], item["specialties"], item["type"]) == ({}, {}, [], None)
        assert isinstance(item["description"], str)
    assert (stats.json()["total_tasks"], stats.json()["successful_tasks"]) == (0, 0)
    assert list(Agent.objects.order_by("pk").values("pk", "metadata", "capabilities", "updated_at")) == before


def test_case07_the_persona_mcp_tools_read_hostile_metadata_the_same_way(world):
    # given: both kinds of hostile record at once
    public, owner = world.memories["public"], world.cast["owner"].agent
    Memory.objects.filter(pk=public.pk).update(metadata={"legacy": {"importance": "high"}})
    Agent.objects.filter(pk=owner.pk).update(metadata={"persona": {"total_tasks": "lots"}})
    reader = world.cast["outsider"].agent
    # when
    with agent_context(reader):
        personas = persona_tools.list_personas(reader)["personas"]
        persona = persona_tools.get_persona(reader, "owner-agent")
        shown = persona_tools.render_persona_memory(Memory.objects.select_related("agent", "namespace").get(pk=public.pk))
    # then
    assert {p["name"]: p["total_tasks"] for p in personas}["owner-agent"] == 0
    assert persona["total_tasks"] == 0
    assert shown["importance"] == learning_weight_to_importance(public.learning_weight)


# --- case 8: a reader cannot block the owner's delete ---------------------------------------------

@pytest.mark.parametrize("api", ["v2", "v1"])
def test_case08_owner_deletes_a_memory_whose_child_it_cannot_see(world, api):
    # given: Bob (member) hangs a private memory under Alice's (owner's) public one
    alice, bob = world.cast["owner"], world.cast["member"]
    parent = world.memories["public"]
    child = create_memory(bob.agent, {"content": "Bob's private follow-up.", "access_level": "private",
                                      "namespace": "team", "parent_memory_id": str(parent.pk)})
    others = [row for row in all_memories() if row["pk"] not in (parent.pk, child.pk)]
    path = f"/api/v2/memories/{parent.pk}" if api == "v2" else f"/api/v1/memory/{parent.pk}"
    # when
    response = alice.client.delete(path)
    # then: deleted, and the database cleared the hidden child's link (the child is otherwise untouched)
    assert response.status_code == (204 if api == "v2" else 200), response.content
    assert not Memory.objects.filter(pk=parent.pk).exists()
    remaining = Memory.objects.get(pk=child.pk)
    assert (remaining.parent_memory_id, remaining.content, remaining.agent_id) == (
        None, "Bob's private follow-up.", bob.agent.pk)
    assert [row for row in all_memories() if row["pk"] != child.pk] == others


def test_case08_the_parent_link_is_cleared_by_the_database_itself():
    # then: ON DELETE SET NULL on the foreign key, which PostgreSQL runs as the table owner, outside RLS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT confdeltype FROM pg_constraint WHERE conrelid = 'memories'::regclass AND contype = 'f'"
            " AND confrelid = 'memories'::regclass"
        )
        assert cursor.fetchall() == [("n",)]


def test_case08_deleting_a_namespace_that_holds_only_a_hidden_memory_answers_409(world, make_namespace):
    # given: a namespace holding nothing but the member's private memory, which the admin agent cannot see
    make_namespace("scratch", policy="open")
    member = world.cast["member"]
    assert member.client.post("/api/v2/namespaces/scratch/join").status_code in (200, 204)
    hidden = create_memory(member.agent, {"content": "Only mine.", "access_level": "private", "namespace": "scratch"})
    before_counts, before = stored_counts(), all_memories()
    # when
    response = world.clients["admin"].delete("/api/v2/namespaces/scratch")
    # then
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "not_empty"
    assert Namespace.objects.filter(namespace="scratch").exists()
    assert Memory.objects.filter(pk=hidden.pk).exists()
    assert (stored_counts(), all_memories()) == (before_counts, before)


# --- case 9: bad input is a 400 in the error shape, with nothing stored -----------------------------

WAIT = {"name": "a", "action": "wait", "params": {"seconds": 0}}

BAD_INPUT = [
    pytest.param("post", "/api/v2/memories/bulk", {"memories": [{"content": "x", "namespace": ["team"]}]},
                 "memories[0].namespace", id="bulk-namespace-list"),
    pytest.param("post", "/api/v2/memories/bulk",
                 {"memories": [{"content": "ok", "namespace": "team"}, {"content": "x", "namespace": {"a": 1}}]},
                 "memories[1].namespace", id="bulk-namespace-object"),
    pytest.param("post", "/api/v2/workflows", {"name": "Bad", "steps": [{"name": "a", "action": ["wait"]}]},
                 "steps[0].action", id="workflow-action-list"),
    pytest.param("post", "/api/v2/workflows",
                 {"name": "Bad", "steps": [WAIT, {"name": "b", "action": "wait", "params": {"seconds": 0},
                                                  "when": {"step": ["a"], "status": "completed"}}]},
                 "steps[1].when", id="workflow-when-step-list"),
    pytest.param("post", "/api/v2/workflows",
                 {"name": "Bad", "steps": [WAIT, {"name": "b", "action": "wait", "params": {"seconds": 0},
                                                  "when": {"step": "a", "status": ["completed"]}}]},
                 "steps[1].when", id="workflow-when-status-list"),
    pytest.param("get", "/api/v1/memory?offset=99999999999999999999", None, "offset", id="v1-offset-beyond-bigint"),
    pytest.param("get", "/api/v1/memory?offset=9223372036854775808", None, "offset", id="v1-offset-bigint-plus-one"),
    pytest.param("get", "/api/v1/memory?limit=%D9%A3", None, "limit", id="v1-limit-arabic-digit"),
    pytest.param("get", "/api/v1/tasks?offset=1e3", None, "offset", id="v1-offset-float"),
    pytest.param("post", "/api/v1/memory/search", {"query": "sentences", "min_importance": "high"},
                 "min_importance", id="v1-min-importance-string"),
    pytest.param("post", "/api/v1/memory/search", {"query": "sentences", "min_importance": [0.5]},
                 "min_importance", id="v1-min-importance-list"),
    pytest.param("post", "/api/v1/memory", {"content": "x", "importance": "high"}, "importance",
                 id="v1-importance-string"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), BAD_INPUT)
def test_case09_bad_input_is_a_400_naming_the_field_and_stores_nothing(world, method, path, body, field):
    # given
    client = world.clients["owner"]
    before_counts, before = stored_counts(), all_memories()
    # when
    response = client.generic(method.upper(), path, json.dumps(body) if body is not None else "",
                              content_type="application/json")
    # then
    assert_error_shape(response, 400, field)
    assert (stored_counts(), all_memories()) == (before_counts, before)


# --- case 10: the agent database role reaches only what the write rule and its grants allow ---------

DENIED_WRITES = [
    # (agent, level, statement): rows the agent may read but not write, or not even read.
    ("outsider", "public", "UPDATE memories SET content = 'tampered' WHERE id = %s"),
    ("outsider", "system", "UPDATE memories SET content = 'tampered' WHERE id = %s"),
    ("member", "public", "UPDATE memories SET learning_weight = 10 WHERE id = %s"),
    ("member", "shared", "UPDATE memories SET content = 'tampered' WHERE id = %s"),
    ("ns_admin", "public", "UPDATE memories SET content = 'tampered' WHERE id = %s"),
    ("ns_admin", "system", "UPDATE memories SET content = 'tampered' WHERE id = %s"),
    ("owner", "system", "UPDATE memories SET content = 'tampered' WHERE id = %s"),
    ("admin", "public", "UPDATE memories SET content = 'tampered' WHERE id = %s"),
    ("outsider", "public", "DELETE FROM memories WHERE id = %s"),
    ("outsider", "system", "DELETE FROM memories WHERE id = %s"),
    ("member", "shared", "DELETE FROM memories WHERE id = %s"),
    ("sharee", "shared", "DELETE FROM memories WHERE id = %s"),
    ("owner", "system", "DELETE FROM memories WHERE id = %s"),
]


@pytest.mark.parametrize(("principal", "level", "statement"), DENIED_WRITES)
def test_case10_writes_outside_the_write_rule_change_no_rows(world, principal, level, statement):
    # given
    before = all_memories()
    # when
    with inside_agent_context(world.cast[principal].agent) as cursor:
        cursor.execute(statement, [world.memories[level].pk])
        affected = cursor.rowcount
    # then
    assert affected == 0
    assert all_memories() == before


@pytest.mark.parametrize(
    ("principal", "level"),
    [("owner", "public"), ("owner", "private"), ("ns_admin", "shared"), ("admin", "system")],
)
def test_case10_writes_inside_the_write_rule_still_work(world, principal, level):
    # when
    with inside_agent_context(world.cast[principal].agent) as cursor:
        cursor.execute("UPDATE memories SET memory_category = 'curated' WHERE id = %s", [world.memories[level].pk])
        updated = cursor.rowcount
        cursor.execute("DELETE FROM memories WHERE id = %s", [world.memories[level].pk])
        deleted = cursor.rowcount
    # then: both touched the row (and were rolled back)
    assert (updated, deleted) == (1, 1)


@pytest.mark.parametrize(
    ("principal", "statement"),
    [
        # An owner may not hand its memory to another agent, nor a namespace admin take a shared memory private.
        ("owner", "UPDATE memories SET agent_id = (SELECT id FROM agents WHERE agent_id = 'member-agent')"
                  " WHERE id = %(public)s"),
        ("owner", "UPDATE memories SET access_level = 'system' WHERE id = %(public)s"),
        ("ns_admin", "UPDATE memories SET access_level = 'private' WHERE id = %(shared)s"),
    ],
)
def test_case10_an_update_may_not_move_a_row_out_of_the_write_rule(world, principal, statement):
    # given
    before = all_memories()
    # when
    with pytest.raises(DatabaseError, match="row-level security"):
        with inside_agent_context(world.cast[principal].agent) as cursor:
            cursor.execute(statement, {level: memory.pk for level, memory in world.memories.items()})
    # then
    assert all_memories() == before


INSERT = (
    "INSERT INTO memories (id, created_at, updated_at, metadata, content, embedding_status, embedding_error,"
    " embedding_attempts, agent_id, namespace_id, access_level, context_tags, learning_weight, memory_category)"
    " VALUES (gen_random_uuid(), now(), now(), '{}', 'forged', 'pending', '', 0,"
    " (SELECT id FROM agents WHERE agent_id = %s), (SELECT id FROM namespaces WHERE namespace = %s), %s, '[]', 1.0,"
    " 'general')"
)


@pytest.mark.parametrize(
    ("principal", "owner", "namespace", "level"),
    [
        ("outsider", "outsider-agent", "team", "public"),  # not a member of team
        ("outsider", "owner-agent", "other", "private"),  # as someone else
        ("owner", "owner-agent", "team", "system"),  # system memories are for admin agents
        ("admin", "owner-agent", "team", "system"),  # ... and then as themselves
        ("ns_admin", "ns-admin-agent", "company", "shared"),  # membership does not flow up the tree
    ],
)
def test_case10_inserts_outside_the_insert_rule_are_refused(world, principal, owner, namespace, level):
    # given
    before = all_memories()
    # when
    with pytest.raises(DatabaseError, match="row-level security"):
        with inside_agent_context(world.cast[principal].agent) as cursor:
            cursor.execute(INSERT, [owner, namespace, level])
    # then
    assert all_memories() == before


@pytest.mark.parametrize(
    ("principal", "owner", "namespace", "level"),
    [("owner", "owner-agent", "team", "private"), ("ns_admin", "ns-admin-agent", "team", "shared"),
     ("admin", "admin-agent", "team", "system")],
)
def test_case10_inserts_inside_the_insert_rule_still_work(world, principal, owner, namespace, level):
    # when
    with inside_agent_context(world.cast[principal].agent) as cursor:
        cursor.execute(INSERT, [owner, namespace, level])
        inserted = cursor.rowcount
    # then
    assert inserted == 1


DENIED_STATEMENTS = [
    "SELECT * FROM api_keys",
    "SELECT hashed_secret FROM api_keys",
    "UPDATE api_keys SET revoked_at = NULL",
    "SELECT * FROM django_session",
    "SELECT * FROM auth_user_user_permissions",
    "SELECT * FROM django_admin_log",
    "SELECT * FROM compat_imported_row",
    "UPDATE auth_user SET is_superuser = true",
    "UPDATE agents SET access_level = 'admin'",
    "INSERT INTO namespaces_namespaceuserobjectpermission (user_id, permission_id, content_object_id)"
    " SELECT 1, 1, id FROM namespaces",
    "UPDATE namespaces SET access_policy = 'open'",
    "DELETE FROM namespaces",
    "INSERT INTO memories_memoryuserobjectpermission (user_id, permission_id, content_object_id)"
    " SELECT 1, 1, id FROM memories",
    "DELETE FROM django_migrations",
]


@pytest.mark.parametrize("statement", DENIED_STATEMENTS)
def test_case10_the_agent_role_holds_no_grant_beyond_what_agent_requests_need(world, statement):
    # given
    before_counts, before = stored_counts(), all_memories()
    # when
    with pytest.raises(DatabaseError, match="permission denied"):
        with inside_agent_context(world.cast["admin"].agent) as cursor:
            cursor.execute(statement)
    # then
    assert (stored_counts(), all_memories()) == (before_counts, before)


def test_case10_agent_requests_that_change_rights_and_keys_still_work(world, make_namespace):
    # given
    make_namespace("club", policy="open")
    owner, admin = world.cast["owner"], world.cast["admin"]
    # when: joining, sharing, feedback on another's memory, registering and rotating keys, namespaces
    joined = world.cast["outsider"].client.post("/api/v2/namespaces/club/join")
    shared = owner.client.post(f"/api/v2/memories/{world.ids['shared']}/share", {"agent_ids": ["outsider-agent"]},
                               format="json")
    feedback = world.cast["outsider"].client.post(f"/api/v2/memories/{world.ids['public']}/feedback",
                                                  {"useful": True}, format="json")
    registered = admin.client.post("/api/v2/agents", {"agent_id": "new-agent", "namespace": "team"}, format="json")
    created = admin.client.post("/api/v2/namespaces", {"namespace": "annex", "access_policy": "open"}, format="json")
    renamed = owner.client.patch("/api/v2/agents/owner-agent", {"display_name": "Owner"}, format="json")
    rotated = owner.client.post("/api/v2/agents/owner-agent/rotate-key")
    # then
    assert joined.status_code in (200, 204), joined.content
    assert shared.status_code == 200, shared.content
    assert feedback.status_code == 200, feedback.content
    assert registered.status_code == 201, registered.content
    assert rotated.status_code in (200, 201), rotated.content
    assert created.status_code == 201, created.content
    assert renamed.status_code == 200, renamed.content
    assert Memory.objects.get(pk=world.ids["public"]).learning_weight == pytest.approx(1.1)
    assert Agent.objects.get(agent_id="owner-agent").display_name == "Owner"
