"""An agent's learning suggestions in the admin, each carried out by one click."""
from __future__ import annotations

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from memories.contracts import StoreMemory
from memories.embedding_jobs import embed_batch
from memories.models import Memory
from memories.services import create_memory

pytestmark = pytest.mark.django_db


@pytest.fixture
def untidy(team):
    """Two near duplicates, a categorised neighbour and an uncategorised one, and a memory whose embedding failed."""
    owner = team["owner"].agent
    made = [create_memory(owner, StoreMemory.parse({"content": text, **extra})) for text, extra in [
        ("The staging deploy needs the team lead's approval.", {}),
        ("The staging deploy needs the team lead's approval!", {}),
        ("Rotate the database password every 90 days.", {"memory_category": "security"}),
        ("Rotate the API signing key every 90 days.", {}),
        ("A memory the model could not embed.", {}),
    ]]
    embed_batch([m.pk for m in made[:4]])
    Memory.objects.filter(pk=made[4].pk).update(embedding_status="failed", embedding_error="boom")
    return made


def test_the_page_lists_each_suggestion_with_its_button(team, untidy, superuser_client):
    page = superuser_client.get(reverse("admin:agent_suggestions", args=[team["owner"].agent.pk]))
    assert page.status_code == 200
    kinds = [s["kind"] for s in page.context["suggestions"]]
    assert {"retry_embeddings", "review_near_duplicates"} <= set(kinds)
    text = page.content.decode()
    assert "Re-embed these 1 memories" in text and "Merge this group" in text


def test_one_click_merges_a_near_duplicate_group(team, untidy, superuser_client):
    group = superuser_client.get(reverse("admin:agent_suggestions", args=[team["owner"].agent.pk])).context[
        "near_duplicates"][0]["memory_ids"]
    response = superuser_client.post(reverse("admin:memories_memory_changelist"),
                                     {"action": "merge", helpers.ACTION_CHECKBOX_NAME: group}, follow=True)
    assert response.status_code == 200
    assert Memory.objects.filter(pk__in=group, retired_into__isnull=False).count() == 2


def test_one_click_re_embeds_the_failed_memories(team, untidy, superuser_client):
    response = superuser_client.post(reverse("admin:memories_memory_changelist"),
                                     {"action": "re_embed", helpers.ACTION_CHECKBOX_NAME: [str(untidy[4].pk)]},
                                     follow=True)
    assert response.status_code == 200
    assert Memory.objects.get(pk=untidy[4].pk).embedding_status in ("pending", "ready")


def test_applying_categories_files_memories(team, untidy, superuser_client):
    url = reverse("admin:agent_suggestions", args=[team["owner"].agent.pk])
    response = superuser_client.post(url, {"apply": "categories"}, follow=True)
    assert response.status_code == 200
    assert "Filed" in response.content.decode()


def test_an_operator_outside_the_agents_namespace_gets_404(team, untidy, make_operator):
    client = make_operator("ops-other", {"other": ["view_namespace", "change_namespace"]})
    assert client.get(reverse("admin:agent_suggestions", args=[team["owner"].agent.pk])).status_code == 404
    assert client.post(reverse("admin:agent_suggestions", args=[team["owner"].agent.pk]),
                       {"apply": "categories"}).status_code == 404
