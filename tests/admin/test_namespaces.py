"""Namespaces in the admin: creation and moves through the service, members managed by role."""
from __future__ import annotations

import pytest
from django.urls import reverse

import access
from namespaces.models import Namespace

NAMESPACE_FORM = {"access_policy": "invite_only", "description": "", "display_name": "", "metadata": "{}"}


def _members_url(namespace) -> str:
    return reverse("admin:namespaces_namespace_members", args=[namespace.pk])


def test_creating_a_child_namespace_sets_its_path(superuser_client, team):
    # given
    parent = Namespace.objects.get(namespace="squad")
    # when
    response = superuser_client.post(
        reverse("admin:namespaces_namespace_add"), {**NAMESPACE_FORM, "namespace": "pod", "parent": parent.pk}
    )
    # then
    assert response.status_code == 302
    pod = Namespace.objects.get(namespace="pod")
    assert (pod.path, pod.depth, pod.display_name) == ("company/team/squad/pod", 3, "pod")


def test_moving_a_namespace_rewrites_its_subtree(superuser_client, team):
    # given
    team_ns = Namespace.objects.get(namespace="team")
    other = Namespace.objects.get(namespace="other")
    # when
    response = superuser_client.post(
        reverse("admin:namespaces_namespace_change", args=[team_ns.pk]),
        {**NAMESPACE_FORM, "display_name": "team", "parent": other.pk},
    )
    # then
    assert response.status_code == 302
    assert dict(Namespace.objects.values_list("namespace", "path")) == {
        "company": "company", "other": "other", "team": "other/team", "squad": "other/team/squad",
    }


def test_moving_a_namespace_under_its_descendant_is_refused_on_the_form(superuser_client, team):
    # given
    team_ns = Namespace.objects.get(namespace="team")
    squad = Namespace.objects.get(namespace="squad")
    # when
    response = superuser_client.post(
        reverse("admin:namespaces_namespace_change", args=[team_ns.pk]),
        {**NAMESPACE_FORM, "display_name": "team", "parent": squad.pk},
    )
    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["parent"] == [
        "A namespace cannot be moved under itself or its descendants."
    ]
    team_ns.refresh_from_db()
    assert team_ns.path == "company/team"


def test_a_namespace_holding_memories_cannot_be_deleted(superuser_client, one_of_each):
    # when
    response = superuser_client.post(
        reverse("admin:namespaces_namespace_delete", args=[one_of_each["namespace"].pk]), {"post": "yes"}
    )
    # then: the stock page lists what protects it
    assert response.status_code == 200
    assert Namespace.objects.filter(pk=one_of_each["namespace"].pk).exists()


def test_an_empty_namespace_is_deleted(superuser_client, make_namespace):
    # given
    empty = make_namespace("empty")
    # when
    response = superuser_client.post(reverse("admin:namespaces_namespace_delete", args=[empty.pk]), {"post": "yes"})
    # then
    assert response.status_code == 302
    assert not Namespace.objects.filter(namespace="empty").exists()


def test_members_page_lists_roles(superuser_client, team):
    # when
    response = superuser_client.get(_members_url(Namespace.objects.get(namespace="team")))
    # then
    assert response.status_code == 200
    assert [(m["agent"].agent_id, m["role"], m["home"]) for m in response.context["members"]] == [
        ("member-agent", "member", True), ("ns-admin-agent", "admin", False), ("owner-agent", "member", True),
    ]


@pytest.mark.parametrize("role", ["member", "admin"])
def test_adding_a_member_with_a_role(superuser_client, team, role):
    # given
    squad = Namespace.objects.get(namespace="squad")
    outsider = team["outsider"].agent
    # when
    response = superuser_client.post(_members_url(squad), {"add": "Save", "agent_id": outsider.agent_id, "role": role})
    # then
    assert response.status_code == 302
    assert access.is_member(outsider, squad) is True
    assert (squad.pk in access.admin_namespace_ids(outsider)) is (role == "admin")


def test_removing_a_member(superuser_client, team):
    # given
    team_ns = Namespace.objects.get(namespace="team")
    ns_admin = team["ns_admin"].agent
    # when
    response = superuser_client.post(_members_url(team_ns), {"remove": ns_admin.agent_id})
    # then
    assert response.status_code == 302
    assert access.is_member(ns_admin, team_ns) is False


def test_an_agent_cannot_be_removed_from_its_home_namespace(superuser_client, team):
    # given
    team_ns = Namespace.objects.get(namespace="team")
    owner = team["owner"].agent
    # when
    response = superuser_client.post(_members_url(team_ns), {"remove": owner.agent_id}, follow=True)
    # then
    assert "An agent cannot leave its home namespace" in response.content.decode()
    assert access.is_member(owner, team_ns) is True


def test_unknown_agent_is_reported(superuser_client, team):
    # when
    response = superuser_client.post(
        _members_url(Namespace.objects.get(namespace="team")), {"add": "Save", "agent_id": "ghost", "role": "member"}
    )
    # then
    assert response.status_code == 200
    assert "Agent &#x27;ghost&#x27; does not exist." in response.content.decode()


def test_operator_with_view_right_only_reads_members(scoped_tree, make_operator):
    # given
    viewer = make_operator("viewer-op", {"alpha": ["view_namespace"]})
    alpha = scoped_tree["namespaces"]["alpha"]
    beta_agent = scoped_tree["agents"]["beta"].agent
    # when
    page = viewer.get(_members_url(alpha))
    post = viewer.post(_members_url(alpha), {"add": "Save", "agent_id": beta_agent.agent_id, "role": "member"})
    # then
    assert page.status_code == 200
    assert page.context["may_manage"] is False
    assert post.status_code == 403
    assert access.is_member(beta_agent, alpha) is False


def test_members_page_of_a_namespace_outside_the_scope_is_missing(scoped_tree, make_operator):
    # given
    operator = make_operator("alpha-op", {"alpha": ["view_namespace", "change_namespace"]})
    # when
    response = operator.get(_members_url(scoped_tree["namespaces"]["beta"]))
    # then
    assert response.status_code == 404
