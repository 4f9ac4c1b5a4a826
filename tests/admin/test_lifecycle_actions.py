"""Admin actions of the memory lifecycle: merge the selected memories; purge agents after a confirmation page."""
from __future__ import annotations

import pytest
from django.contrib.admin import helpers

from agents.models import Agent
from memories.contracts import StoreMemory
from memories.models import Memory
from memories.services import create_memory
from tests.database_rows import table_sizes

pytestmark = pytest.mark.django_db


def _act(client, model: str, action: str, ids, **extra):
    return client.post(f"/admin/{model}/", {"action": action, helpers.ACTION_CHECKBOX_NAME: [str(i) for i in ids],
                                           **extra}, follow=True)


def test_an_operator_merges_the_selected_memories(team, superuser_client):
    owner = team["owner"].agent
    first = create_memory(owner, StoreMemory.parse({"content": "Standup at 9.", "access_level": "shared"}))
    second = create_memory(owner, StoreMemory.parse({"content": "Standup is at nine.", "access_level": "shared"}))
    response = _act(superuser_client, "memories/memory", "merge", [first.pk, second.pk])
    assert response.status_code == 200
    merged = Memory.objects.get(retired_into__isnull=True, metadata__merge__isnull=False)
    assert merged.content == "Standup at 9.\n\nStandup is at nine."
    assert (merged.agent_id, merged.access_level) == (owner.pk, "shared")
    assert "Merged 2 memories into" in response.content.decode()


def test_a_scoped_operator_cannot_merge_memories_outside_its_namespaces(team, make_operator):
    owner = team["owner"].agent
    ids = [create_memory(owner, StoreMemory.parse({"content": f"Note {n}.", "access_level": "shared"})).pk
           for n in range(2)]
    client = make_operator("ops-other", {"other": ["view_namespace", "change_namespace"]})
    before = table_sizes()
    response = _act(client, "memories/memory", "merge", ids)
    assert response.status_code == 200
    assert table_sizes() == before


def test_purging_shows_the_counts_first_and_erases_only_after_confirmation(team, superuser_client):
    # given
    owner = team["owner"].agent
    create_memory(owner, StoreMemory.parse({"content": "Private note."}))
    before = table_sizes()
    # when: the action shows the confirmation page with a dry run
    page = _act(superuser_client, "agents/agent", "purge", [owner.pk])
    # then
    assert page.status_code == 200
    text = page.content.decode()
    assert "Purging cannot be undone." in text and "<td>owner-agent</td><td>1</td>" in text
    assert table_sizes() == before
    # when: confirmed
    done = _act(superuser_client, "agents/agent", "purge", [owner.pk], confirm="yes")
    # then
    assert done.status_code == 200
    assert "Purged 1 agent(s): owner-agent." in done.content.decode()
    assert not Agent.objects.filter(pk=owner.pk).exists()
