"""Search as an agent: the agent's own results, computed as the agent, recording nothing, shown within the
operator's own scope."""
from __future__ import annotations

import pytest
from django.urls import reverse

from memories.contracts import StoreMemory
from memories.embedding_jobs import embed_batch
from memories.services import create_memory

pytestmark = pytest.mark.django_db
URL = "admin:search_as_agent"


@pytest.fixture
def notes(team):
    owner, outsider = team["owner"].agent, team["outsider"].agent
    made = {
        "private": create_memory(owner, StoreMemory.parse({"content": "The harbour crane inspection is on Monday."})),
        "public": create_memory(outsider, StoreMemory.parse({"content": "Harbour crane manuals live in the wiki.",
                                                             "access_level": "public", "namespace": "other"})),
    }
    embed_batch([memory.pk for memory in made.values()])
    return made


def _search(client, agent, query="harbour crane", mode="keyword"):
    return client.get(reverse(URL), {"agent": str(agent.pk), "query": query, "mode": mode, "limit": 10})


def test_an_operator_sees_exactly_what_the_agent_would_get(team, notes, superuser_client):
    # given: what the agent itself gets through the API
    api = team["owner"].client.post("/api/v2/memories/search", {"query": "harbour crane", "mode": "keyword"},
                                    format="json").json()
    # when
    page = _search(superuser_client, team["owner"].agent)
    # then
    assert page.status_code == 200
    assert [str(row["hit"].memory.pk) for row in page.context["rows"]] == [r["memory"]["id"] for r in api["results"]]
    assert [round(row["hit"].score, 6) for row in page.context["rows"]] == [round(r["score"], 6) for r in api["results"]]
    assert "The harbour crane inspection is on Monday." in page.content.decode()


def test_another_agent_does_not_find_the_owners_private_memory(team, notes, superuser_client):
    page = _search(superuser_client, team["outsider"].agent)
    assert [row["hit"].memory.pk for row in page.context["rows"]] == [notes["public"].pk]


def test_searching_as_an_agent_records_no_hit(team, notes, superuser_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        page = _search(superuser_client, team["owner"].agent)
    assert page.status_code == 200 and len(page.context["rows"]) == 2
    assert callbacks == []


def test_a_scoped_operator_picks_only_agents_in_its_scope(team, notes, make_operator):
    client = make_operator("ops-team", {"team": ["view_namespace"]})
    page = _search(client, team["outsider"].agent)
    assert page.status_code == 200
    assert page.context["rows"] == []
    assert "Select a valid choice" in page.content.decode()
    assert [agent.agent_id for agent in page.context["form"].fields["agent"].queryset] == [
        "member-agent", "owner-agent", "squad-agent"]


def test_a_result_outside_the_operators_scope_shows_rank_and_score_only(team, notes, make_operator):
    client = make_operator("ops-team", {"team": ["view_namespace"]})
    page = _search(client, team["owner"].agent)
    text = page.content.decode()
    assert [row["shown"] for row in page.context["rows"]] == [True, False]
    assert "a memory outside your namespaces" in text
    assert "manuals live in the wiki" not in text


def test_bad_input_is_shown_on_the_form(team, superuser_client):
    page = superuser_client.get(reverse(URL), {"agent": str(team["owner"].agent.pk), "query": "", "mode": "fuzzy",
                                               "limit": 500})
    assert page.status_code == 200
    assert set(page.context["form"].errors) == {"query", "mode", "limit"}
