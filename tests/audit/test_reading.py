"""Who reads the audit trail: operators, their namespaces' entries only (superusers all); agents never."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from access import SYSTEM
from agents.contracts import IssueOperatorKey
from agents.services import issue_operator_key
from audit.models import AuditEntry
from namespaces.models import Namespace

from .conftest import mark

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree(make_namespace, make_agent):
    """`alpha` with child `alpha-sub`, and `beta`, an agent registered in each; an operator key outside any."""
    make_namespace("alpha")
    make_namespace("alpha-sub", parent="alpha")
    make_namespace("beta")
    agents = {slug: make_agent(f"{slug}-agent", slug) for slug in ("alpha", "alpha-sub", "beta")}
    issue_operator_key(get_user_model().objects.create_user("script-owner", is_staff=True), IssueOperatorKey())
    return agents


def _operator(username: str, slugs=(), *, admin_view: bool = False):
    """A staff operator (not a superuser) with rights on `slugs`: an API client and a logged-in admin client."""
    user = get_user_model().objects.create_user(username, password="unused-pass-123!", is_staff=True)
    if admin_view:
        user.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    for slug in slugs:
        assign_perm("view_namespace", user, Namespace.objects.get(namespace=slug))
    api = APIClient()
    api.force_authenticate(user)
    browser = Client()
    browser.force_login(user)
    return api, browser


def _paths(client, query: str = "") -> list[str]:
    response = client.get(f"/api/v2/audit?page_size=100{query}")
    assert response.status_code == 200, response.content
    return [entry["namespace"] for entry in response.json()["results"]]


def test_a_scoped_operator_reads_the_entries_of_its_namespaces_and_their_subtrees_only(tree):
    # given
    api, _ = _operator("alpha-operator", ["alpha"])
    # when
    paths = _paths(api)
    # then
    assert sorted(set(paths)) == ["alpha", "alpha/alpha-sub"]
    assert paths.count("alpha") == AuditEntry.objects.filter(namespace_path="alpha").count()


def test_an_operator_without_namespaces_reads_nothing(tree):
    # given
    api, _ = _operator("nobody-operator")
    # when / then
    assert _paths(api) == []


def test_a_superuser_reads_every_entry_also_those_outside_any_namespace(tree, operator_client):
    # when
    paths = _paths(operator_client)
    # then
    assert len(paths) == AuditEntry.objects.count()
    assert {"alpha", "alpha/alpha-sub", "beta", ""} <= set(paths)


@pytest.mark.parametrize("kind", ["standard", "admin"])
def test_agents_are_refused_even_admin_agents(tree, make_agent, kind):
    # given
    handle = make_agent(f"{kind}-reader", "alpha", access_level=kind)
    # when
    response = handle.client.get("/api/v2/audit")
    # then
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "results" not in response.json()


def test_anonymous_callers_are_refused(tree):
    # when
    response = APIClient().get("/api/v2/audit")
    # then
    assert response.status_code == 401


def test_entries_come_newest_first_with_their_fields(tree, operator_client):
    # when
    response = operator_client.get("/api/v2/audit?page_size=2")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == AuditEntry.objects.count() and body["next"]
    newest = AuditEntry.objects.order_by("-id").first()
    assert body["results"][0] == {
        "id": newest.pk, "at": body["results"][0]["at"], "actor": None, "actor_kind": "system",
        "action": "agent.key_issue", "object_type": "auth.user", "object_id": newest.object_id, "namespace": "",
        "namespace_id": None, "before": None, "after": newest.after, "request_id": "",
    }
    assert body["results"][0]["id"] > body["results"][1]["id"]


def test_filters_by_action_actor_object_and_time(tree, operator_client):
    # given
    beta_agent = tree["beta"].agent
    since = timezone.now()
    first = mark()
    tree["beta"].client.post("/api/v2/agents/beta-agent/rotate-key")
    until = timezone.now()

    def ids(query):
        response = operator_client.get("/api/v2/audit", query)
        assert response.status_code == 200, response.content
        return [entry["id"] for entry in response.json()["results"]]

    # then
    rotation = [first + 1]
    assert ids({"action": "agent.key_rotate"}) == rotation
    assert ids({"actor": "beta-agent"}) == rotation
    assert ids({"actor_kind": "agent"}) == rotation
    assert ids({"object_id": str(beta_agent.pk), "action": "agent.key_rotate"}) == rotation
    assert ids({"since": since.isoformat(), "until": until.isoformat()}) == rotation
    assert ids({"until": since.isoformat(), "action": "agent.key_rotate"}) == []
    assert len(ids({"object_id": str(beta_agent.pk)})) == 2  # registered, then re-keyed


@pytest.mark.parametrize("query, field", [
    ({"action": "memory.eat"}, "action"),
    ({"since": "yesterday"}, "since"),
    ({"actor_kind": "robot"}, "actor_kind"),
    ({"page": "0"}, "page"),
])
def test_bad_filters_answer_400_naming_the_field(tree, operator_client, query, field):
    # when
    response = operator_client.get("/api/v2/audit", query)
    # then
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_the_admin_shows_a_scoped_operator_only_its_namespaces_entries(tree):
    # given
    _, browser = _operator("alpha-viewer", ["alpha"], admin_view=True)
    beta_entry = AuditEntry.objects.filter(namespace_path="beta").first()
    alpha_entry = AuditEntry.objects.filter(namespace_path="alpha").first()
    # when
    listing = browser.get("/admin/audit/auditentry/")
    hidden = browser.get(f"/admin/audit/auditentry/{beta_entry.pk}/change/")
    shown = browser.get(f"/admin/audit/auditentry/{alpha_entry.pk}/change/")
    # then
    assert listing.status_code == 200
    rows = listing.context["cl"].result_list
    assert {entry.namespace_path for entry in rows} == {"alpha", "alpha/alpha-sub"}
    assert hidden.status_code == 302  # Django's admin: an object outside the queryset "does not exist"
    assert shown.status_code == 200


def test_the_admin_filters_by_action_and_actor_kind(tree, superuser_client):
    # when
    response = superuser_client.get("/admin/audit/auditentry/", {"action": "agent.key_issue", "actor_kind": "system"})
    # then
    assert response.status_code == 200
    assert [entry.action for entry in response.context["cl"].result_list] == ["agent.key_issue"]


def test_the_admin_needs_the_view_permission_and_changes_nothing(tree, operator_user):
    # given
    _, without_permission = _operator("plain-staff", ["alpha"])
    entry = AuditEntry.objects.filter(namespace_path="alpha").first()
    superuser = Client()
    superuser.force_login(operator_user)
    before = list(AuditEntry.objects.order_by("id").values_list("id", "action", "after"))
    # when
    refused = without_permission.get("/admin/audit/auditentry/")
    add = superuser.get("/admin/audit/auditentry/add/")
    post = superuser.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"action": "memory.delete"})
    delete = superuser.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"})
    # then
    assert refused.status_code == 403
    assert add.status_code == 403
    assert post.status_code == 403
    assert delete.status_code == 403
    assert list(AuditEntry.objects.order_by("id").values_list("id", "action", "after")) == before


def test_system_principal_reads_everything_through_the_rule(tree):
    # The management commands act as SYSTEM; the rule gives it every entry.
    assert AuditEntry.objects.visible_to(SYSTEM).count() == AuditEntry.objects.count()
