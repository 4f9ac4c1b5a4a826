"""Purging an agent: no row of it is left behind (checked with raw SQL over every table); a dry run changes nothing."""
from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from access import SYSTEM
from agents.contracts import UpdateAgent
from agents.models import Agent
from agents.services import update_agent
from audit.models import AuditEntry
from memories.contracts import Feedback, ShareMemory, StoreMemory, UpdateMemory
from memories.decay import decay_weights
from memories.models import Memory, MemoryVersion
from memories.services import create_memory, record_feedback, share_memory, update_memory
from namespaces.contracts import AddMember
from namespaces.models import Namespace
from namespaces.services import add_member
from tests.database_rows import AUDIT_TABLE, rows_mentioning, rows_referencing_user, table_sizes
from workflows.models import Task

pytestmark = pytest.mark.django_db

@pytest.fixture
def victim(team):
    """owner-agent with one of everything: memories of each level, history, shares both ways, a vote, a membership,
    a task, weight decay; member-agent and sharee-agent have memories of their own."""
    owner, member = team["owner"].agent, team["member"].agent
    private = create_memory(owner, StoreMemory.parse({"content": "Victim private: the vault code is 4711."}))
    shared = create_memory(owner, StoreMemory.parse({"content": "Victim shared draft.", "access_level": "shared"}))
    update_memory(owner, private, UpdateMemory.parse({"content": "Victim private: the vault code is 4712."}))
    shared = update_memory(owner, shared, UpdateMemory.parse({"content": "Victim shared: deploys on Fridays."}))
    public = create_memory(owner, StoreMemory.parse({"content": "Victim public: office hours 9-5.",
                                                     "access_level": "public"}))
    share_memory(owner, shared, ShareMemory.parse({"agent_ids": [team["sharee"].agent_id]}))
    members_note = create_memory(member, StoreMemory.parse({"content": "Member shared note.", "access_level": "shared"}))
    share_memory(member, members_note, ShareMemory.parse({"agent_ids": [owner.agent_id]}))
    record_feedback(owner, members_note, Feedback.parse({"useful": True}))
    add_member(SYSTEM, Namespace.objects.get(namespace="other"), AddMember.parse({"agent_id": owner.agent_id}))
    task = Task.objects.create(title="Review the deploy notes", namespace=owner.namespace, assigned_agent=owner,
                               created_by=member)
    update_agent(SYSTEM, owner, UpdateAgent.parse({"configuration": {"decay_half_life_days": 30}}))
    decay_weights()
    return {"agent": Agent.objects.get(pk=owner.pk), "private": private, "shared": shared, "public": public,
            "members_note": members_note, "task": task}


EXPECTED_COUNTS = {"memories": 3, "handed_over": 0, "versions": 5, "shares_granted_to_it": 1,
                   "shares_of_its_memories": 1, "votes": 1, "keys": 1, "memberships": 1}


def _needles(agent) -> tuple[str, ...]:
    return str(agent.pk), agent.agent_id, "Victim private", "vault code"


def test_a_purge_leaves_no_row_of_the_agent_behind(victim, operator_client):
    # given
    agent = victim["agent"]
    user_id = agent.user_id
    assert rows_mentioning(*_needles(agent))  # the needles do find the agent before
    # when
    response = operator_client.delete(f"/api/v2/agents/{agent.agent_id}?purge=true")
    # then
    assert response.status_code == 200, response.content
    assert response.json() == {"agent_id": "owner-agent", "dry_run": False, "hand_to": None, "counts": EXPECTED_COUNTS}
    assert rows_mentioning(*_needles(agent), skip=(AUDIT_TABLE,)) == {}
    assert rows_referencing_user(user_id) == {}
    # the audit trail names it (ids, never content), the purge included
    assert rows_mentioning("Victim private", "vault code") == {}
    assert list(AuditEntry.objects.filter(action="agent.purge").values_list("actor", "object_id", "after")) == [
        ("operator:operator", "owner-agent", {"hand_to": None, **EXPECTED_COUNTS})]
    # what others own stays, without it
    assert Memory.objects.filter(pk=victim["members_note"].pk).exists()
    assert Task.objects.get(pk=victim["task"].pk).assigned_agent_id is None


def test_a_dry_run_counts_exactly_and_changes_nothing(victim, operator_client):
    # given
    before = table_sizes()
    # when
    response = operator_client.delete(f"/api/v2/agents/{victim['agent'].agent_id}?purge=true&dry_run=true")
    # then
    assert response.status_code == 200, response.content
    assert response.json() == {"agent_id": "owner-agent", "dry_run": True, "hand_to": None, "counts": EXPECTED_COUNTS}
    assert table_sizes() == before


def test_shared_and_public_memories_can_be_handed_to_another_agent(victim, operator_client, team):
    # given
    agent, heir = victim["agent"], team["member"].agent
    # when
    response = operator_client.delete(f"/api/v2/agents/{agent.agent_id}?purge=true&hand_to={heir.agent_id}")
    # then
    assert response.status_code == 200, response.content
    assert response.json()["counts"] | {} == {**EXPECTED_COUNTS, "memories": 1, "handed_over": 2, "versions": 2,
                                               "shares_of_its_memories": 0}
    assert sorted(Memory.objects.filter(agent=heir).values_list("content", flat=True)) == [
        "Member shared note.", "Victim public: office hours 9-5.", "Victim shared: deploys on Fridays."]
    # their history stays, under the heir, and names no one for the victim's changes
    assert list(MemoryVersion.objects.filter(memory=victim["shared"]).order_by("version").values_list(
        "version", "agent_id", "changed_by_agent_id")) == [(1, heir.pk, None), (2, heir.pk, None)]
    assert rows_mentioning(str(agent.pk), agent.agent_id, "vault code", skip=(AUDIT_TABLE,)) == {}
    # the sharee of the handed memory still reads it
    assert team["sharee"].client.get(f"/api/v2/memories/{victim['shared'].pk}").status_code == 200


def test_the_private_past_of_a_handed_memory_is_erased(team, operator_client):
    # given: a memory that was private, then shared
    owner = team["owner"].agent
    memory = create_memory(owner, StoreMemory.parse({"content": "Private first: salary bands."}))
    update_memory(owner, memory, UpdateMemory.parse({"content": "Now shared: team goals.", "access_level": "shared"}))
    # when
    response = operator_client.delete(f"/api/v2/agents/{owner.agent_id}?purge=true&hand_to=member-agent")
    # then
    assert response.status_code == 200, response.content
    assert list(MemoryVersion.objects.filter(memory=memory).values_list("version", "content")) == [
        (2, "Now shared: team goals.")]
    assert rows_mentioning("salary bands") == {}


@pytest.mark.parametrize("who", ["the agent itself", "an admin agent", "an operator of another namespace"])
def test_only_an_operator_who_manages_the_agent_may_purge_and_nothing_changes(victim, team, who):
    # given
    if who == "the agent itself":
        client = team["owner"].client
    elif who == "an admin agent":
        client = team["admin"].client
    else:
        user = get_user_model().objects.create_user("ops-other", password="unused-pass-123!", is_staff=True)
        assign_perm("change_namespace", user, Namespace.objects.get(namespace="other"))
        assign_perm("view_namespace", user, Namespace.objects.get(namespace="other"))
        client = APIClient()
        client.force_authenticate(user)
    before = table_sizes()
    # when
    response = client.delete(f"/api/v2/agents/{victim['agent'].agent_id}?purge=true")
    # then
    assert response.status_code in {"the agent itself": (403,), "an admin agent": (403,),
                                    "an operator of another namespace": (403, 404)}[who]
    assert "vault" not in response.content.decode()
    assert table_sizes() == before


@pytest.mark.parametrize(("query", "field"), [
    ("purge=maybe", "purge"),
    ("purge=true&hand_to=nobody-agent", "hand_to"),
    ("purge=true&hand_to=owner-agent", "hand_to"),
    ("purge=true&dry_run=2", "dry_run"),
])
def test_bad_purge_parameters_are_a_400_or_404_naming_the_field_and_nothing_changes(victim, operator_client,
                                                                                      query, field):
    before = table_sizes()
    response = operator_client.delete(f"/api/v2/agents/owner-agent?{query}")
    assert response.status_code in (400, 404)
    assert list(response.json()["error"]["fields"]) == [field]
    assert table_sizes() == before


def test_the_command_lists_counts_on_a_dry_run_then_purges(victim):
    # given
    before = table_sizes()
    out = StringIO()
    # when
    call_command("purge_agent", "owner-agent", "--dry-run", stdout=out)
    # then
    assert table_sizes() == before
    text = out.getvalue()
    assert "Would erase agent 'owner-agent':" in text and "Nothing changed (dry run)." in text
    assert "  memories erased                   3" in text
    # and for real
    out = StringIO()
    call_command("purge_agent", "owner-agent", "--hand-to", "member-agent", stdout=out)
    assert "Erased agent 'owner-agent', handing its shared, public and system memories to 'member-agent':" in out.getvalue()
    assert not Agent.objects.filter(agent_id="owner-agent").exists()
    with pytest.raises(CommandError, match="owner-agent"):
        call_command("purge_agent", "owner-agent", stdout=StringIO())
