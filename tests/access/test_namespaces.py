"""Namespaces: the tree (cycles, depth, moves) and membership under each access policy."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

import access
from memories.contracts import StoreMemory
from memories.models import Memory
from memories.services import create_memory
from namespaces.models import MAX_DEPTH, Namespace
from namespaces.services import set_role

pytestmark = pytest.mark.django_db


def tree() -> dict[str, tuple[str, int]]:
    return {ns.namespace: (ns.path, ns.depth) for ns in Namespace.objects.all()}


# --- The tree ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("moved", "new_parent"),
    [
        ("company", "company"),  # directly under itself
        ("company", "team"),  # under its child
        ("company", "squad"),  # under its grandchild
        ("team", "squad"),
    ],
)
def test_moves_that_would_make_a_cycle_are_refused(team, operator_client, moved, new_parent):
    # given
    before = tree()
    # when
    response = operator_client.patch(f"/api/v2/namespaces/{moved}", {"parent_namespace": new_parent}, format="json")
    # then
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"] == {"parent_namespace": [response.json()["error"]["message"]]}
    assert tree() == before


def test_namespaces_nest_at_most_max_depth_levels(make_namespace, operator_client):
    # given: a chain as deep as allowed
    make_namespace("level-0")
    for depth in range(1, MAX_DEPTH):
        make_namespace(f"level-{depth}", parent=f"level-{depth - 1}")
    # when
    response = operator_client.post(
        "/api/v2/namespaces", {"namespace": "too-deep", "parent_namespace": f"level-{MAX_DEPTH - 1}"}, format="json"
    )
    # then
    assert Namespace.objects.get(namespace=f"level-{MAX_DEPTH - 1}").depth == MAX_DEPTH - 1
    assert response.status_code == 400, response.content
    assert "parent_namespace" in response.json()["error"]["fields"]
    assert not Namespace.objects.filter(namespace="too-deep").exists()


def test_moving_a_subtree_below_the_depth_limit_is_refused(make_namespace, operator_client):
    # given: a chain of MAX_DEPTH - 1 levels and a separate two-level subtree
    make_namespace("level-0")
    for depth in range(1, MAX_DEPTH - 1):
        make_namespace(f"level-{depth}", parent=f"level-{depth - 1}")
    make_namespace("branch")
    make_namespace("leaf", parent="branch")
    before = tree()
    # when: branch would land at depth MAX_DEPTH - 1 and leaf one deeper
    response = operator_client.patch(
        "/api/v2/namespaces/branch", {"parent_namespace": f"level-{MAX_DEPTH - 2}"}, format="json"
    )
    # then
    assert response.status_code == 400, response.content
    assert tree() == before


def test_moving_a_namespace_rewrites_the_paths_of_its_subtree(team, make_namespace, operator_client):
    # given
    make_namespace("pod", parent="squad")
    # when
    response = operator_client.patch("/api/v2/namespaces/team", {"parent_namespace": "other"}, format="json")
    # then
    assert response.status_code == 200, response.content
    assert response.json()["path"] == "other/team"
    assert tree() == {
        "company": ("company", 0),
        "other": ("other", 0),
        "team": ("other/team", 1),
        "squad": ("other/team/squad", 2),
        "pod": ("other/team/squad/pod", 3),
    }


def test_after_a_move_shared_memories_flow_down_the_new_tree(team, operator_client):
    # given
    company_note = create_memory(
        team["ancestor"].agent, StoreMemory.parse({"content": "Company note.", "access_level": "shared", "namespace": "company"})
    )
    other_note = create_memory(
        team["outsider"].agent, StoreMemory.parse({"content": "Other note.", "access_level": "shared", "namespace": "other"})
    )
    squad = team["descendant"].agent
    assert set(Memory.objects.visible_to(squad)) == {company_note}
    # when
    response = operator_client.patch("/api/v2/namespaces/team", {"parent_namespace": "other"}, format="json")
    # then
    assert response.status_code == 200
    assert set(Memory.objects.visible_to(squad)) == {other_note}


def test_moving_to_the_root_needs_the_right_to_create_root_namespaces(team):
    # given: ns-admin-agent administers team, but may not create root namespaces
    client = team["ns_admin"].client
    # when
    response = client.patch("/api/v2/namespaces/team", {"parent_namespace": None}, format="json")
    # then
    assert response.status_code == 403, response.content
    assert Namespace.objects.get(namespace="team").path == "company/team"


def test_moving_under_a_namespace_one_does_not_administer_is_refused(team, make_namespace):
    # given
    make_namespace("elsewhere")
    # when
    response = team["ns_admin"].client.patch("/api/v2/namespaces/team", {"parent_namespace": "other"}, format="json")
    # then
    assert response.status_code == 403, response.content
    assert Namespace.objects.get(namespace="team").path == "company/team"


@pytest.mark.parametrize(
    ("principal", "parent", "expected"),
    [
        ("owner", None, 403),  # standard agents do not create root namespaces
        ("owner", "team", 403),  # nor children of namespaces they only belong to
        ("ns_admin", "team", 201),  # admins of the parent do
        ("admin", None, 201),
        ("operator", None, 201),
    ],
)
def test_who_creates_namespaces(team, operator_client, principal, parent, expected):
    # given
    client = operator_client if principal == "operator" else team[principal].client
    # when
    response = client.post("/api/v2/namespaces", {"namespace": "new-space", "parent_namespace": parent}, format="json")
    # then
    assert response.status_code == expected, response.content
    assert Namespace.objects.filter(namespace="new-space").exists() == (expected == 201)


def test_an_agent_that_creates_a_child_namespace_administers_it(team):
    # when
    team["ns_admin"].client.post("/api/v2/namespaces", {"namespace": "sub", "parent_namespace": "team"}, format="json")
    # then
    sub = Namespace.objects.get(namespace="sub")
    assert sub.path == "company/team/sub"
    assert sub.pk in access.admin_namespace_ids(team["ns_admin"].agent)


# --- Membership ----------------------------------------------------------------------------

POLICIES = ("open", "invite_only", "closed")


@pytest.fixture
def club(make_namespace, make_agent, operator_client):
    """One namespace per policy, each with an admin and a plain member, plus a newcomer and an outsider."""
    for policy in POLICIES:
        make_namespace(f"{policy.replace('_', '-')}-space", policy=policy)
    home = make_namespace("home")
    cast = {
        "ns_admin": make_agent("space-admin", "home"),
        "plain_member": make_agent("space-member", "home"),
        "outsider": make_agent("space-outsider", "home"),
        "admin": make_agent("root-agent", "home", access_level="admin"),
        "newcomer": make_agent("newcomer", "home"),
    }
    for namespace in Namespace.objects.exclude(pk=home.pk):
        set_role(cast["ns_admin"].agent, namespace, "admin")
        set_role(cast["plain_member"].agent, namespace, "member")
    clients = {name: handle.client for name, handle in cast.items()}
    clients["operator"] = operator_client
    return cast, clients


def space(policy: str) -> Namespace:
    return Namespace.objects.get(namespace=f"{policy.replace('_', '-')}-space")


# Adding or removing another agent: the namespace's admins and admin agents except in closed
# namespaces, where only operators may. Agents outside an invite-only or closed namespace do
# not see it at all (404).
MEMBERSHIP_MATRIX = {
    ("ns_admin", "open"): True, ("ns_admin", "invite_only"): True, ("ns_admin", "closed"): 403,
    ("plain_member", "open"): 403, ("plain_member", "invite_only"): 403, ("plain_member", "closed"): 403,
    ("outsider", "open"): 403, ("outsider", "invite_only"): 404, ("outsider", "closed"): 404,
    ("admin", "open"): True, ("admin", "invite_only"): True, ("admin", "closed"): 403,
    ("operator", "open"): True, ("operator", "invite_only"): True, ("operator", "closed"): True,
}


@pytest.mark.parametrize(("principal", "policy"), list(MEMBERSHIP_MATRIX))
def test_who_adds_members(club, principal, policy):
    # given
    cast, clients = club
    newcomer = cast["newcomer"].agent
    # when
    response = clients[principal].post(
        f"/api/v2/namespaces/{space(policy).namespace}/members", {"agent_id": "newcomer"}, format="json"
    )
    # then
    allowed = MEMBERSHIP_MATRIX[(principal, policy)]
    assert response.status_code == (201 if allowed is True else allowed), response.content
    assert access.is_member(newcomer, space(policy)) == (allowed is True)


@pytest.mark.parametrize(("principal", "policy"), list(MEMBERSHIP_MATRIX))
def test_who_removes_members(club, principal, policy):
    # given
    cast, clients = club
    newcomer = cast["newcomer"].agent
    set_role(newcomer, space(policy), "member")
    # when
    response = clients[principal].delete(f"/api/v2/namespaces/{space(policy).namespace}/members/newcomer")
    # then
    allowed = MEMBERSHIP_MATRIX[(principal, policy)]
    assert response.status_code == (204 if allowed is True else allowed), response.content
    assert access.is_member(newcomer, space(policy)) == (allowed is not True)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("open", 200), ("invite_only", 404), ("closed", 404)],
)
def test_self_join_follows_the_policy(club, policy, expected):
    # given
    cast, _ = club
    newcomer = cast["newcomer"]
    # when
    response = newcomer.client.post(f"/api/v2/namespaces/{space(policy).namespace}/join")
    # then
    assert response.status_code == expected, response.content
    assert access.is_member(newcomer.agent, space(policy)) == (expected == 200)


@pytest.mark.parametrize("policy", ["invite_only", "closed"])
def test_self_join_of_a_visible_but_not_open_namespace_is_forbidden(make_namespace, make_agent, policy):
    # given: the parent is visible to agents of the child namespace, but not open
    make_namespace("parent", policy=policy)
    make_namespace("child", parent="parent", policy=policy)  # nothing below a closed namespace is more open
    agent = make_agent("child-agent", "child")
    # when
    response = agent.client.post("/api/v2/namespaces/parent/join")
    # then
    assert response.status_code == 403, response.content
    assert not access.is_member(agent.agent, Namespace.objects.get(namespace="parent"))


def test_joining_makes_the_namespace_writable_for_the_agent(club):
    # given
    newcomer = club[0]["newcomer"]
    body = {"content": "Hello, lobby.", "access_level": "shared", "namespace": "open-space"}
    assert newcomer.client.post("/api/v2/memories", body, format="json").status_code == 403
    # when
    joined = newcomer.client.post("/api/v2/namespaces/open-space/join")
    # then
    assert joined.status_code == 200
    assert newcomer.client.post("/api/v2/memories", body, format="json").status_code == 201


def test_operators_cannot_join_they_add(club):
    # when
    response = club[1]["operator"].post("/api/v2/namespaces/open-space/join")
    # then
    assert response.status_code == 403


def test_a_member_may_leave_but_not_its_home_namespace(club):
    # given
    cast, _ = club
    member = cast["plain_member"]
    # when
    left = member.client.delete("/api/v2/namespaces/invite-only-space/members/space-member")
    home = member.client.delete("/api/v2/namespaces/home/members/space-member")
    # then
    assert left.status_code == 204
    assert not access.is_member(member.agent, space("invite_only"))
    assert home.status_code == 400
    assert access.is_member(member.agent, Namespace.objects.get(namespace="home"))


def test_namespace_admins_grant_the_admin_role(club):
    # given
    cast, clients = club
    # when
    response = clients["ns_admin"].post(
        "/api/v2/namespaces/invite-only-space/members", {"agent_id": "newcomer", "role": "admin"}, format="json"
    )
    added = cast["newcomer"].client.post(
        "/api/v2/namespaces/invite-only-space/members", {"agent_id": "space-outsider"}, format="json"
    )
    # then
    assert response.status_code == 201
    assert added.status_code == 201
    assert access.is_member(cast["outsider"].agent, space("invite_only"))


@pytest.mark.parametrize(("holds_permission", "expected"), [(True, 201), (False, 404)])
def test_staff_operators_manage_closed_namespaces_they_hold_rights_on(club, holds_permission, expected):
    # given: a staff user who is not a superuser
    cast, _ = club
    staff = get_user_model().objects.create_user("staff-operator", is_staff=True)
    if holds_permission:
        assign_perm("view_namespace", staff, space("closed"))
        assign_perm("change_namespace", staff, space("closed"))
    client = APIClient()
    client.force_authenticate(staff)
    # when
    response = client.post("/api/v2/namespaces/closed-space/members", {"agent_id": "newcomer"}, format="json")
    # then
    assert response.status_code == expected, response.content
    assert access.is_member(cast["newcomer"].agent, space("closed")) == (expected == 201)


def test_changing_a_closed_namespace_policy_is_for_operators(club):
    # given
    _, clients = club
    # when
    response = clients["ns_admin"].patch("/api/v2/namespaces/closed-space", {"access_policy": "open"}, format="json")
    # then
    assert response.status_code == 403
    assert space("closed").access_policy == "closed"
