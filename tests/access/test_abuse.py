"""Isolation against a hostile agent and a scoped operator: each case tries a takeover, an escalation
or a leak, and checks the exact refusal and that nothing changed.

Cases 7-10 (hostile stored metadata, deletes blocked by hidden rows, 500s on bad input, the reach of
the agent database role) plant hostile metadata in the database directly, as the system, since
agents may not write the importer-owned keys themselves.
"""
from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import DatabaseError, connection
from django.test import Client
from django.urls import reverse
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

import access
from access import SYSTEM
from agents.models import Agent, ApiKey
from compat import tools as persona_tools
from compat.adapter import learning_weight_to_importance
from compat.contracts import ListPersonas, PersonaLookup
from core.db import agent_context
from memories.contracts import StoreMemory
from memories.models import Memory
from memories.services import create_memory
from namespaces.contracts import AddMember, CreateNamespace
from namespaces.models import Namespace
from namespaces.services import add_member, create_namespace
from workflows.models import Workflow, WorkflowRun

from .conftest import KEYWORD, LEVELS
from .test_hostile_input import stored_counts as principal_and_memory_counts
from .test_rls import inside_agent_context, raw_visible_ids

pytestmark = pytest.mark.django_db




VAULT_SUB = CreateNamespace.parse({"namespace": "vault-sub", "parent_namespace": "vault", "access_policy": "closed"})


def _root():
    """A superuser for fixtures that add members."""
    user, _ = get_user_model().objects.get_or_create(
        username="abuse-root", defaults={"is_staff": True, "is_superuser": True}
    )
    return user


def _scoped_operator(username: str, slugs, codenames=("view_namespace", "change_namespace")):
    """A staff operator (not a superuser) with guardian rights on `slugs`, and an API client for it."""
    user = get_user_model().objects.create_user(username, password="unused-pass-123!", is_staff=True)
    for slug in slugs:
        for codename in codenames:
            assign_perm(codename, user, Namespace.objects.get(namespace=slug))
    client = APIClient()
    client.force_authenticate(user)
    return user, client


def _keys(agent) -> list[tuple]:
    return sorted(ApiKey.objects.filter(user=agent.user).values_list("lookup", "revoked_at"))


def _me(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/api/v2/agents/me").status_code


def _agent_row(agent) -> dict:
    return Agent.objects.filter(pk=agent.pk).values(
        "access_level", "is_active", "namespace_id", "metadata", "display_name"
    ).get()


# --- Case 1: key rotation, retirement and access-level changes ---------------------------------

def test_case01_an_admin_agent_cannot_rotate_another_agents_key(team):
    # given
    admin, owner = team["admin"], team["owner"]
    before = _keys(owner.agent)
    # when
    response = admin.client.post(f"/api/v2/agents/{owner.agent_id}/rotate-key")
    # then
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert _keys(owner.agent) == before
    assert _me(owner.key) == 200


def test_case01_an_agent_rotates_its_own_key(team):
    # when
    response = team["owner"].client.post("/api/v2/agents/owner-agent/rotate-key")
    # then
    assert response.status_code == 200, response.content
    assert _me(team["owner"].key) == 401
    assert _me(response.json()["api_key"]) == 200


@pytest.mark.parametrize("home", ["other", "team"])
def test_case01_a_scoped_operator_cannot_rotate_an_admin_agents_key(team, make_agent, home):
    # given: an admin agent outside the operator's namespaces, or inside them
    target = team["admin"] if home == "other" else make_agent("team-admin-agent", "team", access_level="admin")
    _, operator = _scoped_operator("team-op", ["team"])
    before = _keys(target.agent)
    # when
    response = operator.post(f"/api/v2/agents/{target.agent_id}/rotate-key")
    # then
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert _keys(target.agent) == before
    assert _me(target.key) == 200


def test_case01_a_scoped_operator_rotates_keys_only_of_agents_in_its_scope(team):
    # given
    _, operator = _scoped_operator("team-op", ["team"])
    outsider_before = _keys(team["outsider"].agent)
    # when
    inside = operator.post("/api/v2/agents/member-agent/rotate-key")
    outside = operator.post("/api/v2/agents/outsider-agent/rotate-key")
    # then
    assert inside.status_code == 200, inside.content
    assert outside.status_code == 403, outside.content
    assert _keys(team["outsider"].agent) == outsider_before
    assert _me(team["outsider"].key) == 200


def test_case01_a_scoped_operator_cannot_retire_or_demote_an_admin_agent_in_its_namespace(team, make_agent):
    # given
    target = make_agent("team-admin-agent", "team", access_level="admin")
    _, operator = _scoped_operator("team-op", ["team"])
    before, keys = _agent_row(target.agent), _keys(target.agent)
    # when
    retired = operator.delete(f"/api/v2/agents/{target.agent_id}")
    demoted = operator.patch(f"/api/v2/agents/{target.agent_id}", {"access_level": "standard"}, format="json")
    # then
    assert (retired.status_code, demoted.status_code) == (403, 403)
    assert retired.json()["error"]["code"] == demoted.json()["error"]["code"] == "permission_denied"
    assert _agent_row(target.agent) == before
    assert _keys(target.agent) == keys
    assert _me(target.key) == 200


def test_case01_an_admin_agent_cannot_retire_or_change_another_admin_agent(team, make_agent):
    # given
    target = make_agent("second-admin", "other", access_level="admin")
    before, keys = _agent_row(target.agent), _keys(target.agent)
    # when
    retired = team["admin"].client.delete("/api/v2/agents/second-admin")
    changed = team["admin"].client.patch("/api/v2/agents/second-admin", {"display_name": "Mine"}, format="json")
    # then
    assert (retired.status_code, changed.status_code) == (403, 403)
    assert _agent_row(target.agent) == before
    assert _keys(target.agent) == keys


# --- Case 2: a closed namespace does not open through a child ----------------------------------

@pytest.fixture
def vault(team, make_namespace, make_agent):
    """Closed namespace `vault` with a shared memory, a vault member that administers it, and an open `lobby`."""
    make_namespace("vault", policy="closed")
    make_namespace("lobby", policy="open")
    keeper = make_agent("keeper-agent", "vault")
    add_member(_root(), Namespace.objects.get(namespace="vault"), AddMember.parse({"agent_id": keeper.agent_id, "role": "admin"}))
    secret = create_memory(keeper.agent, StoreMemory.parse(
        {"content": "Vault combination is 31-4-15.", "access_level": "shared"}))
    return {"keeper": keeper, "secret": secret}


def _tree() -> list[tuple]:
    return sorted(Namespace.objects.values_list("namespace", "parent__namespace", "access_policy", "path"))


@pytest.mark.parametrize("principal", ["keeper", "admin"])
def test_case02_agents_cannot_create_a_child_of_a_closed_namespace(team, vault, principal):
    # given
    client = vault["keeper"].client if principal == "keeper" else team["admin"].client
    before = _tree()
    # when
    response = client.post(
        "/api/v2/namespaces", {"namespace": "leak", "parent_namespace": "vault", "access_policy": "open"}, format="json"
    )
    # then
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert _tree() == before
    # and the outsider still cannot reach the vault's shared memory
    assert team["outsider"].client.post("/api/v2/namespaces/leak/join").status_code == 404
    assert team["outsider"].client.get(f"/api/v2/memories/{vault['secret'].pk}").status_code == 404


def test_case02_a_child_of_a_closed_namespace_is_never_more_open(team, vault, operator_client):
    # given
    before = _tree()
    # when
    opened = operator_client.post(
        "/api/v2/namespaces", {"namespace": "leak", "parent_namespace": "vault", "access_policy": "open"}, format="json"
    )
    closed = operator_client.post(
        "/api/v2/namespaces", {"namespace": "vault-sub", "parent_namespace": "vault", "access_policy": "closed"},
        format="json",
    )
    # then
    assert opened.status_code == 400, opened.content
    assert opened.json()["error"]["fields"] == {"access_policy": [opened.json()["error"]["message"]]}
    assert closed.status_code == 201, closed.content
    assert _tree() == sorted([*before, ("vault-sub", "vault", "closed", "vault/vault-sub")])


def test_case02_a_scoped_operator_needs_the_closed_ancestor_in_its_scope(team, vault):
    # given: an operator holding `team` only, and one holding the closed vault
    create_namespace(SYSTEM, VAULT_SUB)
    _, operator = _scoped_operator("team-op", ["team"])
    _, vault_operator = _scoped_operator("vault-op", ["vault"])
    before = _tree()
    # when
    refused = operator.post(
        "/api/v2/namespaces", {"namespace": "deeper", "parent_namespace": "vault-sub", "access_policy": "closed"},
        format="json",
    )
    allowed = vault_operator.post(
        "/api/v2/namespaces", {"namespace": "deeper", "parent_namespace": "vault-sub", "access_policy": "closed"},
        format="json",
    )
    # then
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"]["code"] == "permission_denied"
    assert allowed.status_code == 201, allowed.content
    assert _tree() == sorted([*before, ("deeper", "vault-sub", "closed", "vault/vault-sub/deeper")])


def test_case02_opening_a_child_of_a_closed_namespace_is_refused(team, vault, operator_client):
    # given
    create_namespace(SYSTEM, VAULT_SUB)
    before = _tree()
    # when
    response = operator_client.patch("/api/v2/namespaces/vault-sub", {"access_policy": "open"}, format="json")
    # then
    assert response.status_code == 400, response.content
    assert "access_policy" in response.json()["error"]["fields"]
    assert _tree() == before


@pytest.mark.parametrize("principal", ["keeper", "admin", "superuser"])
def test_case02_an_open_namespace_cannot_be_moved_below_a_closed_one(team, vault, operator_client, principal):
    # given: the keeper administers the open lobby too
    add_member(_root(), Namespace.objects.get(namespace="lobby"),
               AddMember.parse({"agent_id": vault["keeper"].agent_id, "role": "admin"}))
    client = {"keeper": vault["keeper"].client, "admin": team["admin"].client, "superuser": operator_client}[principal]
    before = _tree()
    # when
    response = client.patch("/api/v2/namespaces/lobby", {"parent_namespace": "vault"}, format="json")
    # then
    expected = 400 if principal == "superuser" else 403
    assert response.status_code == expected, response.content
    assert _tree() == before


def test_case02_an_open_namespace_left_below_a_closed_one_takes_no_self_joins(team, vault):
    # given: a child opened before the rule held (written straight into the table)
    child = create_namespace(SYSTEM, VAULT_SUB)
    Namespace.objects.filter(pk=child.pk).update(access_policy="open")
    outsider = team["outsider"]
    # when
    response = outsider.client.post("/api/v2/namespaces/vault-sub/join")
    # then
    assert response.status_code == 403, response.content
    assert not access.is_member(outsider.agent, Namespace.objects.get(pk=child.pk))
    assert outsider.client.get(f"/api/v2/memories/{vault['secret'].pk}").status_code == 404


# --- Case 3: learning reads and writes only what the caller may read and change -----------------

@pytest.fixture
def learning_world(team, django_capture_on_commit_callbacks):
    """owner-agent's memories in `team` and, as a member there too, in `other` (near duplicates, a category to file)."""
    owner = team["owner"].agent
    add_member(_root(), Namespace.objects.get(namespace="other"), AddMember.parse({"agent_id": owner.agent_id, "role": "member"}))
    outside = [
        ("The deploy pipeline runs on Jenkins every night at two.", "ops"),
        ("Deploys run through the Jenkins pipeline each night at two.", "ops"),
        ("The nightly Jenkins deploy pipeline starts at two in the morning.", "general"),
        ("The user prefers dark mode in the editor.", "general"),
        ("The user likes dark mode in the editor.", "general"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        inside = create_memory(owner, StoreMemory.parse({"content": "Team lunch is on Fridays.", "namespace": "team"}))
        created = [
            create_memory(owner, StoreMemory.parse({"content": text, "namespace": "other", "memory_category": category}))
            for text, category in outside
        ]
    return {"inside": inside, "outside": created}


def _mentions(body, memories) -> list[str]:
    text = json.dumps(body)
    return [str(m.pk) for m in memories if str(m.pk) in text or m.content[:40] in text]


@pytest.mark.usefixtures("precision")  # a similarity meets a threshold
def test_case03_the_owner_sees_its_proposals_and_near_duplicates(team, learning_world):
    # given: the control, so the refusals below are not empty by accident
    response = team["owner"].client.get("/api/v2/memories/insights")
    # then
    assert response.status_code == 200
    body = response.json()
    assert str(learning_world["outside"][2].pk) in [p["id"] for p in body["categories"]["proposals"]]
    assert _mentions(body["near_duplicates"], learning_world["outside"][3:]) != []


@pytest.mark.parametrize("principal", ["scoped_operator", "admin"])
def test_case03_insights_show_nothing_outside_the_callers_reach(team, learning_world, principal):
    # given
    client = _scoped_operator("team-op", ["team"])[1] if principal == "scoped_operator" else team["admin"].client
    # when
    response = client.get("/api/v2/memories/insights", {"agent_id": "owner-agent"})
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert _mentions(body, learning_world["outside"]) == []
    assert body["categories"]["proposals"] == []
    assert body["near_duplicates"] == []


def test_case03_categorise_apply_changes_nothing_outside_the_operators_scope(team, learning_world):
    # given
    _, operator = _scoped_operator("team-op", ["team"])
    before = sorted(Memory.objects.values_list("pk", "memory_category", "updated_at"))
    # when
    response = operator.post("/api/v2/memories/categorise", {"agent_id": "owner-agent", "apply": True}, format="json")
    # then
    assert response.status_code == 200, response.content
    assert (response.json()["applied"], response.json()["proposals"]) == (0, [])
    assert sorted(Memory.objects.values_list("pk", "memory_category", "updated_at")) == before


# --- Case 4: workflow run outputs are the runner's --------------------------------------------

@pytest.fixture
def searched_run(team, django_capture_on_commit_callbacks):
    """owner-agent's workflow searches memories; member-agent runs it and finds its own private memory."""
    owner, member = team["owner"], team["member"]
    with django_capture_on_commit_callbacks(execute=True):
        secret = create_memory(member.agent, StoreMemory.parse({"content": "My private passphrase is marigold-seventeen."}))
        workflow = owner.client.post(
            "/api/v2/workflows",
            {"name": "Find", "namespace": "team",
             "steps": [{"name": "find", "action": "search_memories", "params": {"query": "marigold passphrase"}}]},
            format="json",
        ).json()
        started = member.client.post(f"/api/v2/workflows/{workflow['id']}/run", {}, format="json")
    assert started.status_code == 202, started.content
    run = WorkflowRun.objects.get(pk=started.json()["id"])
    assert run.status == "completed", run.error
    return {"workflow": workflow, "run": run, "secret": secret}


def test_case04_the_runner_reads_its_run_outputs(team, searched_run):
    # when
    response = team["member"].client.get(
        f"/api/v2/workflows/{searched_run['workflow']['id']}/runs/{searched_run['run'].pk}"
    )
    # then
    assert response.status_code == 200
    assert str(searched_run["secret"].pk) in json.dumps(response.json()["step_runs"][0]["output"])


@pytest.mark.parametrize("principal", ["owner", "admin"])
def test_case04_the_workflow_author_sees_the_run_but_not_its_outputs(team, searched_run, principal):
    # given
    client = team[principal].client
    workflow_id, run_id = searched_run["workflow"]["id"], searched_run["run"].pk
    outputs_before = WorkflowRun.objects.filter(pk=run_id).values_list("output", flat=True).get()
    # when
    detail = client.get(f"/api/v2/workflows/{workflow_id}/runs/{run_id}")
    listed = client.get(f"/api/v2/workflows/{workflow_id}/runs")
    legacy = client.get(f"/api/v1/workflows/{workflow_id}/status")
    # then
    assert (detail.status_code, listed.status_code) == (200, 200)
    body = detail.json()
    assert (body["status"], body["output"], body["outputs_hidden"]) == ("completed", None, True)
    assert [step["output"] for step in body["step_runs"]] == [None]
    secret = searched_run["secret"]
    for response in (detail, listed, legacy):
        assert str(secret.pk) not in response.content.decode()
        assert "marigold" not in response.content.decode()
    assert WorkflowRun.objects.filter(pk=run_id).values_list("output", flat=True).get() == outputs_before


# --- Case 5: scoped operators write only in the names of agents they manage ---------------------

def test_case05_a_scoped_operator_cannot_store_a_memory_for_an_agent_outside_its_scope(team):
    # given
    _, operator = _scoped_operator("team-op", ["team"])
    before = Memory.objects.count()
    item = {"content": "Written in someone else's name.", "namespace": "team", "agent_id": "outsider-agent"}
    # when
    single = operator.post("/api/v2/memories", item, format="json")
    bulk = operator.post(
        "/api/v2/memories/bulk",
        {"memories": [{**item, "agent_id": "owner-agent"}, item]},
        format="json",
    )
    # then
    assert single.status_code == 403, single.content
    assert single.json()["error"]["code"] == "permission_denied"
    assert single.json()["error"]["fields"] == {"agent_id": [single.json()["error"]["message"]]}
    assert bulk.status_code == 403, bulk.content
    assert list(bulk.json()["error"]["fields"]) == ["memories[1].agent_id"]
    assert Memory.objects.count() == before


def test_case05_a_scoped_operator_stores_memories_for_agents_it_manages(team):
    # given
    _, operator = _scoped_operator("team-op", ["team"])
    # when
    response = operator.post(
        "/api/v2/memories", {"content": "Filed for the owner.", "namespace": "team", "agent_id": "owner-agent"},
        format="json",
    )
    # then
    assert response.status_code == 201, response.content
    assert Memory.objects.get(pk=response.json()["id"]).agent == team["owner"].agent


# --- Case 6: identity never comes from metadata an agent writes --------------------------------

def test_case06_agents_cannot_write_the_persona_key_of_their_own_metadata(team):
    # given
    owner = team["owner"]
    before = _agent_row(owner.agent)
    # when
    response = owner.client.patch(
        "/api/v2/agents/owner-agent", {"metadata": {"persona": {"id": str(uuid.uuid4())}}}, format="json"
    )
    # then
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "reserved_metadata"
    assert response.json()["error"]["fields"] == {"metadata.persona": [response.json()["error"]["message"]]}
    assert _agent_row(owner.agent) == before


def test_case06_admin_agents_cannot_register_an_agent_with_a_persona_identity(team):
    # when
    response = team["admin"].client.post(
        "/api/v2/agents",
        {"agent_id": "fake-athena", "namespace": "other", "metadata": {"persona": {"id": str(uuid.uuid4())}}},
        format="json",
    )
    # then
    assert response.status_code == 403, response.content
    assert not Agent.objects.filter(agent_id="fake-athena").exists()


def test_case06_agents_cannot_write_the_legacy_key_of_memories(team):
    # given
    from memories.tools import store_memory

    owner = team["owner"]
    planted = create_memory(owner.agent, StoreMemory.parse({"content": "Imported fact.", "metadata": {"note": "x"}}))
    Memory.objects.filter(pk=planted.pk).update(metadata={"note": "x", "legacy": {"importance": 0.9}})
    before_count, before_planted = Memory.objects.count(), Memory.objects.values("metadata").get(pk=planted.pk)
    hostile = {"legacy": {"importance": 1.0, "persona_id": str(uuid.uuid4())}}
    # when
    created = owner.client.post("/api/v2/memories", {"content": "Fake import.", "metadata": hostile}, format="json")
    bulk = owner.client.post(
        "/api/v2/memories/bulk", {"memories": [{"content": "Fine."}, {"content": "Fake.", "metadata": hostile}]},
        format="json",
    )
    changed = owner.client.patch(f"/api/v2/memories/{planted.pk}", {"metadata": hostile}, format="json")
    v1 = owner.client.post("/api/v1/memory", {"content": "Fake v1 import.", "metadata": hostile}, format="json")
    from core.errors import Forbidden

    with pytest.raises(Forbidden):
        store_memory(owner.agent, StoreMemory.parse({"content": "Fake MCP import.", "metadata": hostile}))
    # then
    assert [r.status_code for r in (created, bulk, changed, v1)] == [403, 403, 403, 403]
    assert {r.json()["error"]["code"] for r in (created, bulk, changed, v1)} == {"reserved_metadata"}
    assert created.json()["error"]["fields"] == {"metadata.legacy": [created.json()["error"]["message"]]}
    assert list(bulk.json()["error"]["fields"]) == ["memories[1].metadata.legacy"]
    assert Memory.objects.count() == before_count
    assert Memory.objects.values("metadata").get(pk=planted.pk) == before_planted


def test_case06_the_legacy_key_survives_an_agents_metadata_edit(team):
    # given
    owner = team["owner"]
    planted = create_memory(owner.agent, StoreMemory.parse({"content": "Imported fact."}))
    Memory.objects.filter(pk=planted.pk).update(metadata={"legacy": {"importance": 0.9}})
    # when
    response = owner.client.patch(f"/api/v2/memories/{planted.pk}", {"metadata": {"note": "mine"}}, format="json")
    # then
    assert response.status_code == 200, response.content
    assert Memory.objects.get(pk=planted.pk).metadata == {"note": "mine", "legacy": {"importance": 0.9}}


def test_case06_a_persona_id_planted_in_metadata_names_no_persona(team):
    # given: a hostile agent whose metadata claims a persona-era id (planted past the API)
    from compat.adapter import agent_for_persona
    from core.errors import NotFound

    claimed = str(uuid.uuid4())
    hostile = team["outsider"].agent
    Agent.objects.filter(pk=hostile.pk).update(metadata={"persona": {"id": claimed}})
    before = Memory.objects.count()
    # when
    persona = team["owner"].client.get(f"/api/v1/personas/{claimed}")
    written = team["admin"].client.post(
        "/api/v1/memory", {"content": "For the persona.", "persona_id": claimed}, format="json"
    )
    # then
    with pytest.raises(NotFound):
        agent_for_persona(claimed)
    assert persona.status_code == 404, persona.content
    assert written.status_code == 404, written.content
    assert written.json()["error"]["code"] == "not_found"
    assert Memory.objects.count() == before


# --- Case 11: the smaller leaks -----------------------------------------------------------------

@pytest.fixture
def admin_tree(make_namespace, make_agent):
    """`alpha` and `beta`, an agent in each, and a public beta memory an alpha memory refines."""
    make_namespace("alpha")
    make_namespace("beta")
    alpha, beta = make_agent("alpha-agent", "alpha"), make_agent("beta-agent", "beta")
    parent = create_memory(beta.agent, StoreMemory.parse(
        {"content": "Beta roadmap: ship the orchid feature.", "access_level": "public"}))
    child = create_memory(alpha.agent, StoreMemory.parse({"content": "Alpha note on that.", "parent_memory_id": str(parent.pk)}))
    return {"alpha": alpha, "beta": beta, "parent": parent, "child": child}


def _admin_operator(username: str, rights: dict, models=("view_memory", "view_workflowrun", "view_workflow")):
    user = get_user_model().objects.create_user(username, password="unused-pass-123!", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=models))
    for slug, codenames in rights.items():
        for codename in codenames:
            assign_perm(codename, user, Namespace.objects.get(namespace=slug))
    client = Client()
    client.force_login(user)
    return client


def test_case11_the_memory_admin_hides_a_parent_outside_the_operators_scope(admin_tree):
    # given
    client = _admin_operator("alpha-op", {"alpha": ["view_namespace", "change_namespace"]})
    # when
    page = client.get(reverse("admin:memories_memory_change", args=[admin_tree["child"].pk]))
    # then
    assert page.status_code == 200
    assert "Alpha note on that." in page.content.decode()
    assert "orchid" not in page.content.decode()


def test_case11_the_memory_add_form_does_not_render_a_memory_named_as_parent(admin_tree):
    # given
    client = _admin_operator("alpha-op", {"alpha": ["view_namespace", "change_namespace"]})
    client_user = get_user_model().objects.get(username="alpha-op")
    client_user.user_permissions.add(Permission.objects.get(codename="add_memory"))
    before = Memory.objects.count()
    parent = admin_tree["parent"]
    # when
    shown = client.get(reverse("admin:memories_memory_add"), {"parent_memory": str(parent.pk)})
    posted = client.post(reverse("admin:memories_memory_add"), {
        "agent": admin_tree["alpha"].agent.pk, "parent_memory": str(parent.pk), "content": "",
        "namespace": Namespace.objects.get(namespace="alpha").pk, "access_level": "private",
        "memory_category": "general", "context_tags": "[]", "learning_weight": "1.0", "metadata": "{}",
    })
    # then
    assert (shown.status_code, posted.status_code) == (200, 200)
    assert "orchid" not in shown.content.decode()
    assert "orchid" not in posted.content.decode()
    assert Memory.objects.count() == before


def test_case11_view_only_operators_do_not_read_runs_in_the_admin_that_the_api_hides(admin_tree):
    # given: a run in alpha started by alpha-agent
    from workflows.models import Workflow

    workflow = Workflow.objects.create(name="W", namespace=Namespace.objects.get(namespace="alpha"),
                                       steps=[], created_by=admin_tree["alpha"].agent)
    run = WorkflowRun.objects.create(workflow=workflow, triggered_by=admin_tree["alpha"].agent, status="completed",
                                     output={"found": "orchid secret"})
    user_client = _admin_operator("viewer-op", {"alpha": ["view_namespace"]})
    api = APIClient()
    api.force_authenticate(get_user_model().objects.get(username="viewer-op"))
    # when
    api_detail = api.get(f"/api/v2/workflows/{workflow.pk}/runs/{run.pk}")
    listing = user_client.get(reverse("admin:workflows_workflowrun_changelist"))
    detail = user_client.get(reverse("admin:workflows_workflowrun_change", args=[run.pk]))
    # then
    assert api_detail.status_code == 404
    assert listing.status_code == 200
    assert str(run.pk) not in listing.content.decode()
    # the admin answers "does not exist" by redirecting to its index, as for a missing row
    assert (detail.status_code, detail.url) == (302, reverse("admin:index"))
    assert [str(message) for message in get_messages(detail.wsgi_request)] == [
        f"workflow run with ID “{run.pk}” doesn’t exist. Perhaps it was deleted?"
    ]


def test_case11_readyz_shows_no_exception_text_to_anonymous_callers(db, settings):
    # given: a broker that refuses connections
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    # when
    response = Client().get("/readyz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["broker"]) == ("unavailable", "unavailable")
    assert body["database"].startswith("pgvector ")


def test_case11_operators_see_why_readyz_fails(db, settings, operator_user):
    # given
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    client = Client()
    client.force_login(operator_user)
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 503
    assert response.json()["broker"].startswith("OperationalError") or "Error" in response.json()["broker"]


def test_case11_one_feedback_vote_per_reader_per_memory(team):
    # given
    from memories.models import MemoryFeedback

    owner, member, outsider = team["owner"], team["member"], team["outsider"]
    memory = create_memory(owner.agent, StoreMemory.parse(
        {"content": "Public tip.", "access_level": "public", "learning_weight": 2.0}))
    url = f"/api/v2/memories/{memory.pk}/feedback"

    def weight() -> float:
        return Memory.objects.values_list("learning_weight", flat=True).get(pk=memory.pk)

    # when: one reader repeats its vote
    repeated = [member.client.post(url, {"useful": True}, format="json").status_code for _ in range(5)]
    after_repeats = weight()
    # then
    assert repeated == [200] * 5
    assert after_repeats == pytest.approx(2.1)
    assert MemoryFeedback.objects.filter(memory=memory).count() == 1
    # when: it changes its mind, and another reader votes
    member.client.post(url, {"useful": False}, format="json")
    after_change = weight()
    outsider.client.post(url, {"useful": False}, format="json")
    # then
    assert after_change == pytest.approx(1.9)
    assert weight() == pytest.approx(1.8)
    assert sorted(MemoryFeedback.objects.filter(memory=memory).values_list("useful", flat=True)) == [False, False]


def test_case06_agents_cannot_write_the_legacy_key_of_tasks_and_workflows(team):
    # given
    from workflows.models import Task, Workflow

    owner = team["owner"]
    hostile = {"legacy": {"assigned_persona_id": str(uuid.uuid4())}}
    before = (Task.objects.count(), Workflow.objects.count())
    # when
    task = owner.client.post("/api/v2/tasks", {"title": "Fake import", "metadata": hostile}, format="json")
    workflow = owner.client.post("/api/v2/workflows", {"name": "Fake import", "steps": [], "metadata": hostile},
                                 format="json")
    # then
    assert (task.status_code, workflow.status_code) == (403, 403), (task.content, workflow.content)
    assert task.json()["error"]["code"] == workflow.json()["error"]["code"] == "reserved_metadata"
    assert (Task.objects.count(), Workflow.objects.count()) == before


# === Cases 7-10 ===================================================================================


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
    assert set(error) == {"code", "message", "fields", "request_id"}
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
        personas = persona_tools.list_personas(reader, ListPersonas())["personas"]
        persona = persona_tools.get_persona(reader, PersonaLookup.parse({"persona_id": "owner-agent"}))
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
    child = create_memory(bob.agent, StoreMemory.parse({"content": "Bob's private follow-up.", "access_level": "private",
                                      "namespace": "team", "parent_memory_id": str(parent.pk)}))
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
    # then: ON DELETE SET NULL on the parent link, which PostgreSQL runs as the table owner, outside RLS (and a
    # merge's retired originals go with the merged memory by ON DELETE CASCADE, for the same reason)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, confdeltype FROM pg_constraint"
            " JOIN pg_attribute ON attrelid = conrelid AND attnum = conkey[1]"
            " WHERE conrelid = 'memories'::regclass AND contype = 'f' AND confrelid = 'memories'::regclass"
            " ORDER BY attname"
        )
        assert cursor.fetchall() == [("parent_memory_id", "n"), ("retired_into_id", "c")]


def test_case08_deleting_a_namespace_that_holds_only_a_hidden_memory_answers_409(world, make_namespace):
    # given: a namespace holding nothing but the member's private memory, which the admin agent cannot see
    make_namespace("scratch", policy="open")
    member = world.cast["member"]
    assert member.client.post("/api/v2/namespaces/scratch/join").status_code == 200
    hidden = create_memory(member.agent, StoreMemory.parse(
        {"content": "Only mine.", "access_level": "private", "namespace": "scratch"}))
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
                 "steps[1].when.step", id="workflow-when-step-list"),
    pytest.param("post", "/api/v2/workflows",
                 {"name": "Bad", "steps": [WAIT, {"name": "b", "action": "wait", "params": {"seconds": 0},
                                                  "when": {"step": "a", "status": ["completed"]}}]},
                 "steps[1].when.status", id="workflow-when-status-list"),
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
    "SELECT * FROM memory_terms",
    "DELETE FROM memory_terms",
    "SELECT * FROM memory_term_buckets",
    "UPDATE memory_term_documents SET documents = 0",
    "SELECT tmws_readable_buckets(NULL)",
    "SELECT * FROM memory_tags",
    "INSERT INTO memory_tags (tag, bucket_id, memory_id) SELECT 'x', 1, id FROM memories",
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
    assert joined.status_code == 200, joined.content
    assert shared.status_code == 200, shared.content
    assert feedback.status_code == 200, feedback.content
    assert registered.status_code == 201, registered.content
    assert rotated.status_code == 200, rotated.content
    assert created.status_code == 201, created.content
    assert renamed.status_code == 200, renamed.content
    assert Memory.objects.get(pk=world.ids["public"]).learning_weight == pytest.approx(1.1)
    assert Agent.objects.get(agent_id="owner-agent").display_name == "Owner"


def test_case11_keyword_scores_do_not_reveal_words_in_memories_the_caller_cannot_read(team):
    # given: the owner's own memories and its keyword scores for a query with a rare word
    owner, outsider, member = team["owner"], team["outsider"], team["member"]
    create_memory(owner.agent, StoreMemory.parse({"content": "The launch plan names the falcon project.", "namespace": "team"}))
    create_memory(owner.agent, StoreMemory.parse({"content": "Lunch is at noon on Fridays.", "namespace": "team"}))
    body = {"query": "falcon project codename", "mode": "keyword"}

    def scores() -> dict:
        response = owner.client.post("/api/v2/memories/search", body, format="json")
        assert response.status_code == 200, response.content
        return {hit["memory"]["id"]: hit["score"] for hit in response.json()["results"]}

    before = scores()
    visible_before = Memory.objects.count()
    # when: other agents write the query's words where the owner cannot read them
    create_memory(outsider.agent, StoreMemory.parse({"content": "codename falcon codename", "namespace": "other"}))
    create_memory(outsider.agent, StoreMemory.parse(
        {"content": "codename project", "namespace": "other", "access_level": "shared"}))
    create_memory(member.agent, StoreMemory.parse({"content": "the codename is falcon", "namespace": "team"}))
    with connection.cursor() as cursor:  # fresh planner statistics too: they span every row
        cursor.execute("ANALYZE memories")
    after = scores()
    # then: the owner's scores are the same to the last bit, so the rare word's existence is not revealed
    assert len(before) == 1
    assert after == before
    assert Memory.objects.count() == visible_before + 3


# The function called as a hostile agent could call it: the stemmed words of a text, every weight 1.
SCORES = """
SELECT scored.memory_id::text
  FROM (SELECT array_agg(lexeme) AS terms FROM unnest(to_tsvector('english', %s))) words,
       tmws_keyword_scores(words.terms, array_fill(1.0::float8, ARRAY[cardinality(words.terms)]), 1.2, 0.75, 5.0,
                           NULL, %s::uuid[], %s::uuid[]) scored
"""


@pytest.mark.parametrize("principal", ["outsider", "member", "sharee"])
def test_case11_the_keyword_scores_function_scores_only_what_its_caller_reads_whatever_it_is_passed(world, principal):
    # given every memory's id and word, and what the principal may read
    words = " ".join(KEYWORD[level] for level in LEVELS)
    every_id = list(world.ids.values())
    namespaces = [str(pk) for pk in Namespace.objects.values_list("pk", flat=True)]
    with inside_agent_context(world.cast[principal].agent) as cursor:
        readable = raw_visible_ids(cursor)
        # when it asks the function directly, naming every namespace, and every memory by id
        cursor.execute(SCORES, [words, namespaces, None])
        by_words = {row[0] for row in cursor.fetchall()}
        cursor.execute(SCORES, [words, namespaces, every_id])
        by_ids = {row[0] for row in cursor.fetchall()}
    # then it scores exactly the memories the caller reads, and the namespaces it passed count for nothing
    assert by_words == by_ids == readable & set(every_id)
    assert world.ids["public"] in by_words and world.ids["private"] not in by_words
