"""Every admin page renders for a superuser with data present, and the memory pages never show the vector."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from memories.contracts import StoreMemory
from memories.models import Memory

MODELS = [
    ("agents", "agent"),
    ("agents", "apikey"),
    ("namespaces", "namespace"),
    ("memories", "memory"),
    ("workflows", "task"),
    ("workflows", "workflow"),
    ("workflows", "workflowrun"),
]
ADDABLE = [m for m in MODELS if m[1] not in ("apikey", "workflowrun")]


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_changelist_renders_with_rows(superuser_client, one_of_each, app, model):
    # when
    response = superuser_client.get(reverse(f"admin:{app}_{model}_changelist"))
    # then
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_changelist_search_renders(superuser_client, one_of_each, app, model):
    # when
    response = superuser_client.get(reverse(f"admin:{app}_{model}_changelist"), {"q": "release"})
    # then
    assert response.status_code == 200


@pytest.mark.parametrize(("app", "model"), ADDABLE)
def test_add_page_renders(superuser_client, one_of_each, app, model):
    # when
    response = superuser_client.get(reverse(f"admin:{app}_{model}_add"))
    # then
    assert response.status_code == 200


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_change_page_renders(superuser_client, one_of_each, app, model):
    # given
    obj = one_of_each[model]
    # when
    response = superuser_client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk]))
    # then
    assert response.status_code == 200
    assert response.context["original"].pk == obj.pk


def test_read_only_models_offer_no_add_page(superuser_client, one_of_each):
    # when
    responses = [superuser_client.get(reverse(f"admin:{app}_{model}_add")) for app, model in MODELS if
                 (app, model) not in ADDABLE]
    # then
    assert [r.status_code for r in responses] == [403, 403]


def test_api_key_pages_never_show_the_hash(superuser_client, one_of_each):
    # given
    key = one_of_each["apikey"]
    # when
    pages = [
        superuser_client.get(reverse("admin:agents_apikey_changelist")),
        superuser_client.get(reverse("admin:agents_apikey_change", args=[key.pk])),
        superuser_client.get(reverse("admin:agents_agent_change", args=[one_of_each["agent"].pk])),
    ]
    # then
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert all(key.hashed_secret not in p.content.decode() for p in pages)
    assert all(f"tmws_{key.lookup}_" in p.content.decode() for p in pages)


def test_namespace_list_shows_the_tree_in_order_with_counts(superuser_client, one_of_each):
    # when
    response = superuser_client.get(reverse("admin:namespaces_namespace_changelist"))
    # then
    rows = [(ns.namespace, ns.depth, ns.member_count, ns.memory_count) for ns in response.context["cl"].result_list]
    # company > team > squad stay together; team holds owner, member and the namespace admin.
    assert rows == [
        ("company", 0, 1, 0), ("team", 1, 3, 1), ("squad", 2, 1, 0), ("other", 0, 4, 0),
    ]
    assert 'padding-left: 3.0em">└ squad' in response.content.decode()


def test_persona_list_shows_the_agent_each_persona_became(superuser_client, team):
    # given: one persona linked to the owner agent, one whose agent is gone, one never linked
    from compat.models import Persona, PersonaLink

    for name in ("athena", "artemis", "hestia"):
        Persona.objects.create(name=name, type=name, role="strategist")
    PersonaLink.objects.create(persona=Persona.objects.get(name="athena"), agent=team["owner"].agent)
    PersonaLink.objects.create(persona=Persona.objects.get(name="artemis"), agent=None)
    # when
    response = superuser_client.get(reverse("admin:compat_persona_changelist"))
    # then
    model_admin = response.context["cl"].model_admin
    assert [(persona.name, str(model_admin.agent(persona))) for persona in response.context["cl"].result_list] == [
        ("artemis", "-"), ("athena", "owner-agent"), ("hestia", "-"),
    ]


def test_workflow_page_lists_runs_and_run_page_lists_steps(superuser_client, one_of_each):
    # when
    workflow_page = superuser_client.get(reverse("admin:workflows_workflow_change", args=[one_of_each["workflow"].pk]))
    run_page = superuser_client.get(reverse("admin:workflows_workflowrun_change", args=[one_of_each["workflowrun"].pk]))
    # then
    assert [fs.formset.queryset.count() for fs in workflow_page.context["inline_admin_formsets"]] == [1]
    assert [list(fs.formset.queryset) for fs in run_page.context["inline_admin_formsets"]] == [[one_of_each["steprun"]]]


@pytest.mark.slow
def test_memory_pages_never_contain_the_vector(superuser_client, team, django_capture_on_commit_callbacks):
    # given: a memory whose embedding has been computed
    from memories.services import create_memory

    with django_capture_on_commit_callbacks(execute=True):
        memory = create_memory(team["owner"].agent, StoreMemory.parse(
            {"content": "Backups run nightly at two.", "access_level": "shared"}))
    stored = Memory.objects.get(pk=memory.pk)
    assert stored.embedding_status == "ready"
    fragments = [repr(float(value))[:8] for value in stored.embedding[:8] if abs(value) > 0.001]
    # when
    pages = [
        superuser_client.get(reverse("admin:memories_memory_change", args=[memory.pk])).content.decode(),
        superuser_client.get(reverse("admin:memories_memory_changelist")).content.decode(),
    ]
    # then
    assert len(fragments) >= 4
    for page in pages:
        assert "Backups run nightly at two." in page
        assert 'name="embedding"' not in page
        assert [fragment for fragment in fragments if fragment in page] == []


def test_memory_change_page_shows_embedding_error_read_only(superuser_client, one_of_each):
    # given
    memory = one_of_each["memory"]
    Memory.objects.filter(pk=memory.pk).update(embedding_status="failed", embedding_error="RuntimeError: model gone")
    # when
    response = superuser_client.get(reverse("admin:memories_memory_change", args=[memory.pk]))
    # then
    page = response.content.decode()
    assert "RuntimeError: model gone" in page
    assert 'name="embedding_error"' not in page
    assert 'name="embedding_status"' not in page


def test_dashboard_shows_counts_above_the_app_list(superuser_client, one_of_each):
    # when
    response = superuser_client.get(reverse("admin:index"))
    # then
    assert response.status_code == 200
    sections = {s["title"]: {label: count for label, count, _ in s["rows"]} for s in response.context["dashboard"]}
    assert sections["Agents"] == {"All": 8, "Active": 8}
    assert sections["Namespaces"] == {"All": 4}
    assert sections["Memories by embedding status"] == {
        "All": 1, "Pending": 1, "Ready": 0, "Failed": 0, "Pending: waiting longest": "under a minute",
    }
    assert "Tasks by status" not in sections  # a chart (tests/admin/test_dashboard.py)
    page = response.content.decode()
    assert page.index('id="operator-dashboard"') < page.index('class="app-agents')


@pytest.mark.parametrize(("waited", "shown"), [
    (timedelta(minutes=5, seconds=10), "5 min"), (timedelta(hours=3, minutes=59), "3 h"), (timedelta(days=2), "2 d"),
])
def test_dashboard_says_how_long_the_oldest_pending_memory_has_waited(superuser_client, one_of_each, waited, shown):
    # given
    Memory.objects.filter(pk=one_of_each["memory"].pk).update(updated_at=timezone.now() - waited)
    # when
    response = superuser_client.get(reverse("admin:index"))
    # then
    rows = {s["title"]: s["rows"] for s in response.context["dashboard"]}["Memories by embedding status"]
    assert rows[-1] == ("Pending: waiting longest", shown, "embedding_status__exact=pending")
    assert f"<td class=\"count\">{shown}</td>" in response.content.decode()


def test_dashboard_says_none_waits_when_nothing_is_pending(superuser_client, one_of_each):
    # given
    Memory.objects.filter(pk=one_of_each["memory"].pk).update(embedding_status="ready")
    # when
    response = superuser_client.get(reverse("admin:index"))
    # then
    rows = {s["title"]: s["rows"] for s in response.context["dashboard"]}["Memories by embedding status"]
    assert rows[-1][:2] == ("Pending: waiting longest", "none waits")


def test_dashboard_takes_sixteen_queries(superuser_client, one_of_each, django_assert_num_queries):
    # then: the request's savepoint pair, session, user and its (missing) agent, three aggregates for the counts
    # and eight for the charts (the two search charts share one); more rows: tests/admin/test_dashboard.py

    with django_assert_num_queries(16):
        superuser_client.get(reverse("admin:index"))


@pytest.mark.django_db
def test_the_admin_is_the_tmws_site_titled_tmws_2(superuser_client):
    # given
    from django.contrib import admin

    from tmws_site.admin_site import TmwsAdminSite

    # when
    page = superuser_client.get(reverse("admin:index"))
    # then: one AdminSite subclass, no patched index view
    assert isinstance(admin.site, TmwsAdminSite)
    assert "index" not in vars(admin.site._wrapped)  # admin.site is Django's lazy handle on the site
    assert page.status_code == 200
    html = page.content.decode()
    assert "<title>Operations | TMWS 2</title>" in html
    assert "Django administration" not in html and "Django site admin" not in html
