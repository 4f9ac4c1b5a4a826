"""Why can it see this: access.explain spells out the read rule, and never disagrees with it."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from access import SYSTEM
from access.explain import readers, why_can_read
from memories.contracts import ShareMemory, StoreMemory
from memories.models import Memory
from memories.services import create_memory, share_memory
from namespaces.models import Namespace

pytestmark = pytest.mark.django_db


@pytest.fixture
def memories(team):
    owner, squad = team["owner"].agent, team["descendant"].agent
    made = {
        "private": create_memory(owner, StoreMemory.parse({"content": "Owner's own note."})),
        "team": create_memory(owner, StoreMemory.parse({"content": "Team fact.", "access_level": "shared"})),
        "squad": create_memory(squad, StoreMemory.parse({"content": "Squad fact.", "access_level": "shared"})),
        "public": create_memory(owner, StoreMemory.parse({"content": "Public fact.", "access_level": "public"})),
        "system": create_memory(SYSTEM, StoreMemory.parse({"content": "System fact.", "access_level": "system",
                                                           "namespace": "team"})),
    }
    share_memory(owner, made["team"], ShareMemory.parse({"agent_ids": [team["sharee"].agent_id]}))
    return made


@pytest.fixture
def scoped_operator(db):
    user = get_user_model().objects.create_user("ops-team", password="unused-pass-123!", is_staff=True)
    assign_perm("view_namespace", user, Namespace.objects.get(namespace="team"))
    return user


def test_the_explanation_agrees_with_the_read_rule_for_every_principal_and_memory(team, memories, scoped_operator,
                                                                                  operator_user):
    principals = [handle.agent for handle in team.values()] + [scoped_operator, operator_user]
    for principal in principals:
        for name, memory in memories.items():
            visible = Memory.objects.visible_to(principal).filter(pk=memory.pk).exists()
            assert bool(why_can_read(principal, memory)) == visible, (principal, name)


def test_each_reason_is_named(team, memories, scoped_operator, operator_user):
    team_memory = memories["team"]
    assert why_can_read(team["owner"].agent, team_memory) == [
        {"reason": "owner"}, {"reason": "member", "namespace": "company/team"}]
    assert why_can_read(team["member"].agent, team_memory) == [{"reason": "member", "namespace": "company/team"}]
    assert why_can_read(team["ancestor"].agent, memories["squad"]) == []
    assert why_can_read(team["descendant"].agent, team_memory) == [
        {"reason": "member_below", "namespace": "company/team", "via": "company/team/squad"}]
    assert why_can_read(team["sharee"].agent, team_memory) == [{"reason": "shared_with", "shared_by": "owner-agent"}]
    assert why_can_read(team["outsider"].agent, memories["public"]) == [{"reason": "public"}]
    assert why_can_read(team["outsider"].agent, memories["system"]) == [{"reason": "system"}]
    assert why_can_read(team["outsider"].agent, team_memory) == []
    assert why_can_read(scoped_operator, team_memory) == [{"reason": "operator_scope", "namespace": "company/team"}]
    assert why_can_read(operator_user, memories["private"]) == [{"reason": "superuser"}]


def test_readers_list_every_agent_and_why(team, memories, operator_user):
    listed = readers(operator_user, memories["team"])
    assert listed["everyone"] is False and listed["truncated"] is False
    assert {entry["agent_id"]: entry["reasons"] for entry in listed["agents"]} == {
        "owner-agent": [{"reason": "owner"}, {"reason": "member", "namespace": "company/team"}],
        "member-agent": [{"reason": "member", "namespace": "company/team"}],
        "squad-agent": [{"reason": "member_below", "namespace": "company/team", "via": "company/team/squad"}],
        "ns-admin-agent": [{"reason": "member", "namespace": "company/team"}],
        "sharee-agent": [{"reason": "shared_with", "shared_by": "owner-agent"}],
    }
    assert readers(operator_user, memories["private"])["agents"] == [{"agent_id": "owner-agent",
                                                                       "reasons": [{"reason": "owner"}]}]
    assert readers(operator_user, memories["public"]) == {"everyone": True, "reason": "public", "agents": [],
                                                           "truncated": False}


def test_an_agent_learns_which_operator_shared_only_as_an_operator(team, memories, make_operator_share):
    assert why_can_read(team["sharee"].agent, make_operator_share) == [{"reason": "shared_with",
                                                                         "shared_by": "operator"}]


@pytest.fixture
def make_operator_share(team):
    operator = get_user_model().objects.create_user("ops-bob", password="unused-pass-123!", is_staff=True,
                                                    is_superuser=True)
    memory = create_memory(team["owner"].agent, StoreMemory.parse({"content": "Ops shared.", "access_level": "shared"}))
    share_memory(operator, memory, ShareMemory.parse({"agent_ids": [team["sharee"].agent_id]}))
    return memory


def test_the_api_answers_why_and_shows_readers_to_the_owner_only(team, memories):
    url = f"/api/v2/memories/{memories['team'].pk}/access"
    as_owner = team["owner"].client.get(url)
    as_member = team["member"].client.get(url)
    as_outsider = team["outsider"].client.get(url)
    assert as_owner.status_code == 200, as_owner.content
    assert as_owner.json()["you"] == [{"reason": "owner"}, {"reason": "member", "namespace": "company/team"}]
    assert len(as_owner.json()["readers"]["agents"]) == 5
    assert as_member.status_code == 200
    assert (as_member.json()["you"], as_member.json()["readers"]) == (
        [{"reason": "member", "namespace": "company/team"}], None)
    assert as_outsider.status_code == 404
    assert "Team fact" not in as_outsider.content.decode()


def test_operators_see_the_readers_of_memories_in_their_scope(memories, scoped_operator):
    client = APIClient()
    client.force_authenticate(scoped_operator)
    response = client.get(f"/api/v2/memories/{memories['private'].pk}/access")
    assert response.status_code == 200, response.content
    assert response.json()["you"] == [{"reason": "operator_scope", "namespace": "company/team"}]
    assert response.json()["readers"]["agents"] == [{"agent_id": "owner-agent", "reasons": [{"reason": "owner"}]}]
