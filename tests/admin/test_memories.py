"""Memories in the admin: writes through the service, re-embedding, search, and a flat query count."""
from __future__ import annotations

from django.urls import reverse

from memories.contracts import StoreMemory
from memories.models import Memory
from memories.services import create_memory

CHANGE_FORM = {"memory_category": "general", "access_level": "shared", "context_tags": "[]", "learning_weight": "1.0",
               "metadata": "{}"}


def test_re_embed_action_resets_to_pending_and_enqueues(superuser_client, team, django_capture_on_commit_callbacks):
    # given: one memory whose embedding failed, one never embedded
    owner = team["owner"].agent
    failed = create_memory(owner, StoreMemory.parse({"content": "Deploys freeze on Fridays.", "access_level": "shared"}))
    Memory.objects.filter(pk=failed.pk).update(embedding_status="failed", embedding_error="RuntimeError: boom",
                                               embedding_attempts=3)
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = superuser_client.post(
            reverse("admin:memories_memory_changelist"), {"action": "re_embed", "_selected_action": [failed.pk]}
        )
    # then: reset and queued
    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.embedding_status, failed.embedding_error, failed.embedding_attempts) == ("pending", "", 0)
    assert len(callbacks) == 1
    # and the queued job embeds it
    callbacks[0]()
    failed.refresh_from_db()
    assert (failed.embedding_status, failed.embedding_attempts, len(failed.embedding)) == ("ready", 1, 384)


def test_adding_a_memory_goes_through_the_service(superuser_client, team, django_capture_on_commit_callbacks):
    # given
    owner = team["owner"].agent
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = superuser_client.post(
            reverse("admin:memories_memory_add"),
            {**CHANGE_FORM, "content": "Runbooks live in the ops wiki.", "agent": owner.pk,
             "namespace": owner.namespace_id, "context_tags": '["ops", "ops"]'},
        )
    # then
    assert response.status_code == 302
    memory = Memory.objects.get(content="Runbooks live in the ops wiki.")
    assert (memory.agent, memory.namespace, memory.context_tags, memory.embedding_status) == (
        owner, owner.namespace, ["ops"], "pending",
    )
    assert len(callbacks) == 1


def test_a_refused_memory_shows_on_the_form_and_stores_nothing(superuser_client, team):
    # when: a non-system memory without an owner
    response = superuser_client.post(
        reverse("admin:memories_memory_add"),
        {**CHANGE_FORM, "content": "Nobody owns this.", "namespace": team["owner"].agent.namespace_id},
    )
    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["agent"] == [
        "agent_id is required when an operator stores a non-system memory."
    ]
    assert not Memory.objects.filter(content="Nobody owns this.").exists()


def test_changing_content_resets_the_embedding(superuser_client, team, django_capture_on_commit_callbacks):
    # given
    owner = team["owner"].agent
    memory = create_memory(owner, StoreMemory.parse({"content": "Old text.", "access_level": "shared"}))
    Memory.objects.filter(pk=memory.pk).update(
        embedding_status="ready", embedding=[0.1] * 384, embedding_model="all-MiniLM-L6-v2"
    )
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = superuser_client.post(
            reverse("admin:memories_memory_change", args=[memory.pk]),
            {**CHANGE_FORM, "content": "New text.", "namespace": owner.namespace_id},
        )
    # then
    assert response.status_code == 302
    memory.refresh_from_db()
    assert (memory.content, memory.embedding_status, memory.embedding) == ("New text.", "pending", None)
    assert memory.embedding_model == ""
    assert len(callbacks) == 1


def test_deleting_a_memory(superuser_client, team):
    # given
    memory = create_memory(team["owner"].agent, StoreMemory.parse({"content": "Forget me.", "access_level": "private"}))
    # when
    response = superuser_client.post(reverse("admin:memories_memory_delete", args=[memory.pk]), {"post": "yes"})
    # then
    assert response.status_code == 302
    assert not Memory.objects.filter(pk=memory.pk).exists()


def test_search_uses_the_text_search_vector_and_ids(superuser_client, team):
    # given
    owner = team["owner"].agent
    deploy = create_memory(owner, StoreMemory.parse({"content": "Deployments need two approvals.", "access_level": "shared"}))
    create_memory(owner, StoreMemory.parse({"content": "Lunch is at noon.", "access_level": "shared"}))
    url = reverse("admin:memories_memory_changelist")
    # when
    by_word = superuser_client.get(url, {"q": "deployment approval"})
    by_id = superuser_client.get(url, {"q": str(deploy.pk)})
    # then
    assert [m.pk for m in by_word.context["cl"].result_list] == [deploy.pk]
    assert [m.pk for m in by_id.context["cl"].result_list] == [deploy.pk]


def test_the_change_page_shows_the_history_the_operator_may_read(scoped_tree, make_operator, superuser_client):
    # given: alpha's memory moved to beta (so its first version lies in alpha, its second in beta)
    from memories.contracts import UpdateMemory
    from memories.services import update_memory

    memory = scoped_tree["memories"]["alpha"]
    update_memory(_system(), memory, UpdateMemory.parse({"namespace": "beta", "content": "Fact moved to beta."}))
    alpha_operator = make_operator("alpha-op", {"alpha": ["change_namespace"]})
    beta_operator = make_operator("beta-op", {"beta": ["change_namespace"]})
    url = reverse("admin:memories_memory_change", args=[memory.pk])
    # when
    pages = {name: client.get(url) for name, client in
             (("superuser", superuser_client), ("alpha", alpha_operator), ("beta", beta_operator))}
    # then: the superuser sees both versions; the beta operator the one in its scope; alpha's sees no page
    assert pages["superuser"].status_code == 200 and pages["beta"].status_code == 200
    assert pages["alpha"].status_code == 302
    superuser_text, beta_text = pages["superuser"].content.decode(), pages["beta"].content.decode()
    assert "Fact kept in alpha namespace." in superuser_text and "Fact moved to beta." in superuser_text
    assert "Fact moved to beta." in beta_text and "Fact kept in alpha namespace." not in beta_text


def _system():
    from access import SYSTEM

    return SYSTEM


def test_the_change_page_says_who_can_read_the_memory_and_why(scoped_tree, make_agent, superuser_client):
    # given: alpha's shared memory; an agent homed below alpha; one outside it, shared with
    from memories.contracts import ShareMemory
    from memories.services import share_memory

    memory = scoped_tree["memories"]["alpha"]
    make_agent("outside-agent", "beta")
    share_memory(_system(), memory, ShareMemory.parse({"agent_ids": ["outside-agent"]}))
    # when
    page = superuser_client.get(reverse("admin:memories_memory_change", args=[memory.pk]))
    # then
    text = page.content.decode()
    assert "<td>alpha-agent</td><td>owner; member of alpha</td>" in text
    assert "<td>alpha-sub-agent</td><td>member of alpha/alpha-sub, below alpha</td>" in text
    assert "<td>outside-agent</td><td>shared with it</td>" in text  # by the system: no one to name
    readers = text.split('<table class="readers">')[1].split("</table>")[0]
    assert "beta-agent" not in readers
