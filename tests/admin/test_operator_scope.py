"""Non-superuser operators: guardian rights on namespaces decide which namespaces, memories and agents they see
and change in the admin; the rights themselves are granted by superusers on the namespace's permissions page."""
from __future__ import annotations

import pytest
from django.urls import reverse

from memories.models import Memory
from namespaces.models import Namespace

MEMORY_FORM = {"memory_category": "general", "access_level": "shared", "context_tags": "[]", "learning_weight": "1.0",
               "metadata": "{}"}
NAMESPACE_FORM = {"access_policy": "invite_only", "description": "", "metadata": "{}"}


@pytest.fixture
def alpha_operator(scoped_tree, make_operator):
    """View and change rights on `alpha` (and so on `alpha-sub`); nothing on `beta`."""
    return make_operator("alpha-op", {"alpha": ["view_namespace", "change_namespace"]})


def _contents(response) -> set[str]:
    return {m.content for m in response.context["cl"].result_list}


def test_operator_sees_the_memories_of_its_namespaces_and_their_subtrees_only(alpha_operator):
    # when
    response = alpha_operator.get(reverse("admin:memories_memory_changelist"))
    # then
    assert response.status_code == 200
    assert _contents(response) == {"Fact kept in alpha namespace.", "Fact kept in alpha-sub namespace."}
    assert "Fact kept in beta namespace." not in response.content.decode()


def test_operator_sees_only_its_namespaces_and_agents(alpha_operator):
    # when
    namespaces = alpha_operator.get(reverse("admin:namespaces_namespace_changelist"))
    agents = alpha_operator.get(reverse("admin:agents_agent_changelist"))
    # then
    assert [ns.namespace for ns in namespaces.context["cl"].result_list] == ["alpha", "alpha-sub"]
    assert {a.agent_id for a in agents.context["cl"].result_list} == {"alpha-agent", "alpha-sub-agent"}


@pytest.mark.parametrize(
    ("url_name", "target"),
    [
        ("admin:memories_memory_change", "memory"),
        ("admin:memories_memory_delete", "memory"),
        ("admin:namespaces_namespace_change", "namespace"),
        ("admin:namespaces_namespace_delete", "namespace"),
        ("admin:agents_agent_change", "agent"),
    ],
)
def test_pages_of_other_namespaces_look_missing(alpha_operator, scoped_tree, url_name, target):
    # given
    obj = {
        "memory": scoped_tree["memories"]["beta"],
        "namespace": scoped_tree["namespaces"]["beta"],
        "agent": scoped_tree["agents"]["beta"].agent,
    }[target]
    # when
    response = alpha_operator.get(reverse(url_name, args=[obj.pk]))
    # then: the admin answers "does not exist" by redirecting to its index
    assert response.status_code == 302
    assert response.url == reverse("admin:index")


def test_operator_cannot_change_another_namespace(alpha_operator, scoped_tree):
    # given
    beta = scoped_tree["namespaces"]["beta"]
    # when
    response = alpha_operator.post(
        reverse("admin:namespaces_namespace_change", args=[beta.pk]), {**NAMESPACE_FORM, "display_name": "Taken over"}
    )
    # then
    assert response.status_code == 302
    beta.refresh_from_db()
    assert beta.display_name == "beta"


def test_operator_cannot_change_a_memory_of_another_namespace(alpha_operator, scoped_tree):
    # given
    memory = scoped_tree["memories"]["beta"]
    # when
    response = alpha_operator.post(
        reverse("admin:memories_memory_change", args=[memory.pk]),
        {**MEMORY_FORM, "content": "Rewritten.", "namespace": memory.namespace_id},
    )
    # then
    assert response.status_code == 302
    memory.refresh_from_db()
    assert memory.content == "Fact kept in beta namespace."


def test_operator_changes_its_own_namespace_and_memories(alpha_operator, scoped_tree):
    # given
    alpha = scoped_tree["namespaces"]["alpha"]
    memory = scoped_tree["memories"]["alpha-sub"]
    # when
    namespace_response = alpha_operator.post(
        reverse("admin:namespaces_namespace_change", args=[alpha.pk]), {**NAMESPACE_FORM, "display_name": "Alpha team"}
    )
    memory_response = alpha_operator.post(
        reverse("admin:memories_memory_change", args=[memory.pk]),
        {**MEMORY_FORM, "content": "Corrected fact.", "namespace": memory.namespace_id},
    )
    # then
    assert (namespace_response.status_code, memory_response.status_code) == (302, 302)
    alpha.refresh_from_db()
    memory.refresh_from_db()
    assert (alpha.display_name, memory.content) == ("Alpha team", "Corrected fact.")


def test_operator_cannot_move_a_memory_into_another_namespace(alpha_operator, scoped_tree):
    # given
    memory = scoped_tree["memories"]["alpha"]
    # when
    response = alpha_operator.post(
        reverse("admin:memories_memory_change", args=[memory.pk]),
        {**MEMORY_FORM, "content": memory.content, "namespace": scoped_tree["namespaces"]["beta"].pk},
    )
    # then: beta is not among the choices
    assert response.status_code == 200
    assert "namespace" in response.context["adminform"].form.errors
    memory.refresh_from_db()
    assert memory.namespace.namespace == "alpha"


def test_view_right_alone_gives_read_only_pages(scoped_tree, make_operator):
    # given
    viewer = make_operator("viewer-op", {"alpha": ["view_namespace"]})
    memory = scoped_tree["memories"]["alpha"]
    url = reverse("admin:memories_memory_change", args=[memory.pk])
    # when
    page = viewer.get(url)
    post = viewer.post(url, {**MEMORY_FORM, "content": "Rewritten.", "namespace": memory.namespace_id})
    # then
    assert page.status_code == 200
    assert 'name="content"' not in page.content.decode()
    assert post.status_code == 403
    memory.refresh_from_db()
    assert memory.content == "Fact kept in alpha namespace."


def test_re_embed_action_skips_memories_outside_the_change_scope(scoped_tree, make_operator):
    # given: a viewer of alpha who changes nothing
    viewer = make_operator("viewer-op", {"alpha": ["view_namespace"]})
    memory = scoped_tree["memories"]["alpha"]
    Memory.objects.filter(pk=memory.pk).update(embedding_status="failed", embedding_error="boom")
    # when
    viewer.post(reverse("admin:memories_memory_changelist"), {"action": "re_embed", "_selected_action": [memory.pk]})
    # then
    memory.refresh_from_db()
    assert memory.embedding_status == "failed"


def test_staff_without_model_view_permission_sees_no_app(scoped_tree, django_user_model):
    # given: rights on alpha but no model permission
    from django.test import Client
    from guardian.shortcuts import assign_perm

    user = django_user_model.objects.create_user("bare-op", password="unused-pass-123!", is_staff=True)
    assign_perm("view_namespace", user, scoped_tree["namespaces"]["alpha"])
    client = Client()
    client.force_login(user)
    # when
    index = client.get(reverse("admin:index"))
    memories = client.get(reverse("admin:memories_memory_changelist"))
    # then
    assert index.context["app_list"] == []
    assert index.context["dashboard"] == []
    assert memories.status_code == 403


def test_operator_dashboard_counts_only_its_scope(alpha_operator):
    # when
    response = alpha_operator.get(reverse("admin:index"))
    # then
    sections = {s["title"]: {label: count for label, count, _ in s["rows"]} for s in response.context["dashboard"]}
    assert sections["Namespaces"] == {"All": 2}
    assert sections["Agents"] == {"All": 2, "Active": 2}
    assert sections["Memories by embedding status"]["All"] == 2


@pytest.mark.parametrize("url_name", ["admin:namespaces_namespace_permissions",
                                      "admin:namespaces_namespace_permissions_manage_user"])
def test_only_superusers_manage_operator_rights(alpha_operator, scoped_tree, url_name):
    # given
    alpha = scoped_tree["namespaces"]["alpha"]
    args = [alpha.pk] if url_name.endswith("permissions") else [alpha.pk, alpha_operator.user.pk]
    # when
    response = alpha_operator.get(reverse(url_name, args=args))
    # then
    assert response.status_code == 403


def test_superuser_grants_and_revokes_operator_rights(superuser_client, scoped_tree, django_user_model):
    # given
    operator = django_user_model.objects.create_user("new-op", password="unused-pass-123!", is_staff=True)
    beta = scoped_tree["namespaces"]["beta"]
    url = reverse("admin:namespaces_namespace_permissions_manage_user", args=[beta.pk, operator.pk])
    # when
    granted = superuser_client.post(url, {"permissions": ["view_namespace", "change_namespace"]})
    has_after_grant = operator.has_perm("namespaces.change_namespace", beta)
    revoked = superuser_client.post(url, {"permissions": ["view_namespace"]})
    # then
    assert (granted.status_code, revoked.status_code) == (302, 302)
    assert has_after_grant is True
    operator = django_user_model.objects.get(pk=operator.pk)
    assert operator.has_perm("namespaces.view_namespace", beta) is True
    assert operator.has_perm("namespaces.change_namespace", beta) is False


def test_superuser_permissions_page_renders(superuser_client, scoped_tree):
    # when
    response = superuser_client.get(
        reverse("admin:namespaces_namespace_permissions", args=[scoped_tree["namespaces"]["alpha"].pk])
    )
    # then
    assert response.status_code == 200
    assert "alpha-agent" in response.content.decode()


def test_operator_may_create_children_only_under_namespaces_it_changes(alpha_operator, scoped_tree):
    # given
    from django.contrib.auth.models import Permission

    alpha_operator.user.user_permissions.add(Permission.objects.get(codename="add_namespace"))
    url = reverse("admin:namespaces_namespace_add")
    # when
    inside = alpha_operator.post(url, {**NAMESPACE_FORM, "namespace": "alpha-new", "display_name": "",
                                       "parent": scoped_tree["namespaces"]["alpha"].pk})
    outside = alpha_operator.post(url, {**NAMESPACE_FORM, "namespace": "beta-new", "display_name": "",
                                        "parent": scoped_tree["namespaces"]["beta"].pk})
    top_level = alpha_operator.post(url, {**NAMESPACE_FORM, "namespace": "top-new", "display_name": ""})
    # then
    assert inside.status_code == 302
    assert Namespace.objects.get(namespace="alpha-new").path == "alpha/alpha-new"
    assert (outside.status_code, top_level.status_code) == (200, 200)
    assert top_level.context["adminform"].form.non_field_errors() == [
        "Only operators, admin agents and admins of the parent namespace create namespaces."
    ]
    assert not Namespace.objects.filter(namespace__in=["beta-new", "top-new"]).exists()
