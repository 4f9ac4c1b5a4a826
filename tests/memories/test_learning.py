"""Learning jobs: usage report, categorisation by neighbours, suggestions; who may ask (API and service)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from core.errors import Forbidden, InvalidInput
from memories import learning
from memories.contracts import StoreMemories
from memories.embedding_jobs import embed_batch
from memories.models import Memory
from memories.services import bulk_create_memories
from memories.tasks import AUTO_CATEGORISE_KEY, categorise_opted_in_agents, record_memory_hits

# Similarities meet thresholds and decide orders here: every test runs at both precisions.
pytestmark = pytest.mark.usefixtures("precision")

OPS = [
    "Deploys to staging need the team lead's approval.",
    "Roll back a failed deploy with the release script.",
    "Production deploys happen on Tuesday mornings.",
]
FINANCE = [
    "Invoices are paid within thirty days of receipt.",
    "The quarterly budget review is in March.",
    "Expense reports need a receipt for every item.",
]
UNFILED = {
    "deploy": "Before a deploy to production, announce it in the release channel.",
    "invoice": "Send the supplier's invoice to accounting for payment.",
    "lunch": "The cafeteria serves soup on Mondays.",
}


def store(agent, items: list[dict]) -> list[Memory]:
    memories = bulk_create_memories(agent, StoreMemories.parse({"memories": items}))
    embed_batch([m.pk for m in memories])
    return list(Memory.objects.filter(pk__in=[m.pk for m in memories]).order_by("created_at"))


@pytest.fixture
def filed(team):
    """The owner's memories: three 'ops', three 'finance', three left in 'general'."""
    owner = team["owner"].agent
    store(owner, [{"content": text, "memory_category": "ops", "namespace": "team"} for text in OPS])
    store(owner, [{"content": text, "memory_category": "finance", "namespace": "team"} for text in FINANCE])
    unfiled = store(owner, [{"content": text, "namespace": "team"} for text in UNFILED.values()])
    return team, dict(zip(UNFILED, unfiled, strict=True))


@pytest.mark.django_db
def test_categorise_proposes_the_category_of_close_neighbours_and_changes_nothing(filed):
    # given
    team, unfiled = filed
    # when
    result = learning.categorise(team["owner"].agent)
    # then
    proposed = {proposal["id"]: proposal["category"] for proposal in result["proposals"]}
    assert result["considered"] == 3 and result["applied"] == 0
    assert proposed == {str(unfiled["deploy"].pk): "ops", str(unfiled["invoice"].pk): "finance"}
    assert all(0 < proposal["confidence"] <= 1 for proposal in result["proposals"])
    assert Memory.objects.filter(memory_category="general").count() == 3


@pytest.mark.django_db
def test_categorise_with_apply_files_the_proposed_memories_only(filed):
    # when
    team, unfiled = filed
    result = learning.categorise(team["owner"].agent, apply=True)
    # then
    assert result["applied"] == 2
    categories = {name: Memory.objects.get(pk=m.pk).memory_category for name, m in unfiled.items()}
    assert categories == {"deploy": "ops", "invoice": "finance", "lunch": "general"}


@pytest.mark.django_db
def test_categorise_refuses_an_apply_that_is_not_a_boolean(filed):
    # when / then
    team, _ = filed
    with pytest.raises(InvalidInput, match="apply must be true or false"):
        learning.categorise(team["owner"].agent, apply="yes")


@pytest.mark.django_db
def test_categorise_never_files_another_agents_memories(filed):
    # given: the member has one uncategorised memory about deploys, and no categorised ones
    team, _ = filed
    [theirs] = store(team["member"].agent, [{"content": UNFILED["deploy"], "namespace": "team", "access_level": "shared"}])
    # when
    result = learning.categorise(team["member"].agent, apply=True)
    # then
    assert result == {"considered": 1, "proposals": [], "applied": 0}
    assert Memory.objects.get(pk=theirs.pk).memory_category == "general"


@pytest.mark.django_db
def test_usage_report_counts_what_was_stored_and_found(filed):
    # given: two hits on one memory, one on another; one memory is old and never found
    team, unfiled = filed
    owner = team["owner"].agent
    ops = Memory.objects.filter(memory_category="ops").order_by("created_at")
    record_memory_hits([str(ops[0].pk), str(ops[0].pk), str(ops[1].pk)])
    Memory.objects.filter(pk=unfiled["lunch"].pk).update(created_at=timezone.now() - timedelta(days=45))
    # when
    report = learning.usage_report(owner)
    # then
    assert report["memories"] == 9
    assert report["by_category"] == {"finance": 3, "general": 3, "ops": 3}
    assert report["by_access_level"] == {"private": 9}
    assert report["by_embedding_status"] == {"ready": 9}
    assert report["search_hits"] == 3
    assert report["never_returned"] == 7
    assert report["uncategorised"] == 3
    assert report["unused"] == {"days": 30, "count": 1, "oldest_ids": [str(unfiled["lunch"].pk)]}
    assert [(m["id"], m["hits"]) for m in report["most_returned"]] == [(str(ops[0].pk), 2), (str(ops[1].pk), 1)]


@pytest.mark.django_db
def test_suggestions_name_the_memories_to_act_on(filed):
    # given: an often-found memory with a low weight, an old unused one, a failed embedding
    team, unfiled = filed
    owner = team["owner"].agent
    often = Memory.objects.filter(memory_category="ops").first()
    Memory.objects.filter(pk=often.pk).update(learning_weight=0.5)
    record_memory_hits([str(often.pk)] * 5)
    Memory.objects.filter(pk=unfiled["lunch"].pk).update(created_at=timezone.now() - timedelta(days=45))
    Memory.objects.filter(pk=unfiled["invoice"].pk).update(embedding_status="failed", embedding=None)
    # when
    advice = learning.insights(owner)["suggestions"]
    # then
    assert [item["kind"] for item in advice] == ["retry_embeddings", "apply_categories", "raise_weight", "review_unused"]
    by_kind = {item["kind"]: item for item in advice}
    assert by_kind["retry_embeddings"]["count"] == 1
    assert by_kind["apply_categories"]["count"] == 1  # the deploy note; the invoice has no embedding now
    assert by_kind["raise_weight"]["memory_ids"] == [str(often.pk)]
    assert by_kind["review_unused"]["memory_ids"] == [str(unfiled["lunch"].pk)]


@pytest.mark.django_db
def test_near_duplicates_group_memories_worded_almost_alike_newest_first(team):
    # given: a repeat, a fact that changed, and sentences that share a template but not a meaning
    owner, other = team["owner"].agent, team["member"].agent
    first_mode, rotation_30, alice = store(owner, [
        {"content": "User prefers dark mode in the editor.", "namespace": "team"},
        {"content": "The staging database password rotates every 30 days.", "namespace": "team"},
        {"content": "Deploys to production need approval from Alice.", "namespace": "team"},
    ])
    second_mode, rotation_90, bob = store(owner, [
        {"content": "The user likes dark mode in the editor.", "namespace": "team"},
        {"content": "The staging database password rotates every 90 days.", "namespace": "team"},
        {"content": "Deploys to production need approval from Bob.", "namespace": "team"},
    ])
    Memory.objects.filter(pk__in=[second_mode.pk, rotation_90.pk, bob.pk]).update(
        created_at=timezone.now() + timedelta(seconds=1)
    )
    store(other, [{"content": "The staging database password rotates every 30 days.", "namespace": "team"}])
    # when
    groups = learning.near_duplicates(owner)
    advice = {item["kind"]: item for item in learning.insights(owner)["suggestions"]}
    # then: newest first inside a group; another agent's copy and Alice/Bob (similarity 0.77) stay out
    assert sorted(group["memory_ids"] for group in groups) == sorted([
        [str(second_mode.pk), str(first_mode.pk)], [str(rotation_90.pk), str(rotation_30.pk)],
    ])
    previews = {group["memory_ids"][0]: group["preview"] for group in groups}
    assert previews[str(rotation_90.pk)] == "The staging database password rotates every 90 days."
    assert advice["review_near_duplicates"]["count"] == 2
    assert sorted(advice["review_near_duplicates"]["groups"]) == sorted(group["memory_ids"] for group in groups)


@pytest.mark.django_db
def test_near_duplicates_chain_into_one_group_and_skip_memories_without_embeddings(team):
    # given: A ~ B and B ~ C, and an identical text whose embedding failed
    owner = team["owner"].agent
    texts = ["Release 2.3 shipped on Monday.", "Release 2.3 shipped on Tuesday.", "Release 2.4 shipped on Tuesday."]
    memories = store(owner, [{"content": text, "namespace": "team"} for text in texts])
    unembedded = store(owner, [{"content": texts[0], "namespace": "team"}])[0]
    Memory.objects.filter(pk=unembedded.pk).update(embedding_status="failed", embedding=None)
    for offset, memory in enumerate(memories):
        Memory.objects.filter(pk=memory.pk).update(created_at=timezone.now() + timedelta(seconds=offset))
    # when
    groups = learning.near_duplicates(owner)
    # then
    assert [group["memory_ids"] for group in groups] == [[str(m.pk) for m in reversed(memories)]]


@pytest.mark.django_db
def test_an_agent_with_nothing_stored_gets_an_empty_report_and_no_advice(team):
    # when
    insights = learning.insights(team["outsider"].agent)
    # then
    assert insights["usage"]["memories"] == 0
    assert insights["categories"] == {"considered": 0, "proposals": [], "applied": 0}
    assert insights["near_duplicates"] == []
    assert insights["suggestions"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(("asker", "allowed"), [("owner", True), ("member", False), ("outsider", False), ("admin", True)])
def test_only_the_agent_and_those_who_manage_it_may_analyse_it(team, asker, allowed):
    # when / then
    if allowed:
        assert learning.subject(team[asker].agent, "owner-agent") == team["owner"].agent
    else:
        with pytest.raises(Forbidden, match="No right to analyse the memories of agent 'owner-agent'"):
            learning.subject(team[asker].agent, "owner-agent")


@pytest.mark.django_db
def test_subject_errors(team, operator_user):
    # then
    with pytest.raises(InvalidInput, match="Agent 'ghost' does not exist"):
        learning.subject(team["owner"].agent, "ghost")
    with pytest.raises(InvalidInput, match="agent_id is required"):
        learning.subject(operator_user)
    assert learning.subject(team["member"].agent) == team["member"].agent


# --- API ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_insights_endpoint_reports_on_the_callers_own_memories(filed):
    # when
    team, _ = filed
    response = team["owner"].client.get("/api/v2/memories/insights")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"usage", "categories", "near_duplicates", "suggestions"}
    assert body["near_duplicates"] == []
    assert body["usage"]["agent_id"] == "owner-agent" and body["usage"]["memories"] == 9
    assert body["categories"]["applied"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("asker", "status"), [("owner", 200), ("member", 403), ("outsider", 403)])
def test_insights_endpoint_about_another_agent(filed, asker, status):
    # when
    team, _ = filed
    response = team[asker].client.get("/api/v2/memories/insights", {"agent_id": "owner-agent"})
    # then
    assert response.status_code == status
    if status == 403:
        assert "agent_id" in response.json()["error"]["fields"]
        assert "usage" not in response.json()


@pytest.mark.django_db
def test_categorise_endpoint_applies_for_the_caller(filed):
    # when
    team, unfiled = filed
    dry = team["owner"].client.post("/api/v2/memories/categorise", {}, format="json")
    applied = team["owner"].client.post("/api/v2/memories/categorise", {"apply": True}, format="json")
    # then
    assert dry.status_code == 200 and dry.json()["applied"] == 0 and len(dry.json()["proposals"]) == 2
    assert applied.status_code == 200 and applied.json()["applied"] == 2
    assert Memory.objects.get(pk=unfiled["deploy"].pk).memory_category == "ops"


@pytest.mark.django_db
@pytest.mark.parametrize("asker", ["member", "outsider"])
def test_categorise_endpoint_refuses_other_agents_and_changes_nothing(filed, asker):
    # when
    team, _ = filed
    response = team[asker].client.post("/api/v2/memories/categorise", {"apply": True, "agent_id": "owner-agent"}, format="json")
    # then
    assert response.status_code == 403
    assert Memory.objects.filter(memory_category="general").count() == 3


@pytest.mark.django_db
def test_operators_name_the_agent_they_manage(filed, operator_client):
    # when
    team, _ = filed
    without = operator_client.get("/api/v2/memories/insights")
    named = operator_client.get("/api/v2/memories/insights", {"agent_id": "owner-agent"})
    # then
    assert without.status_code == 400 and "agent_id" in without.json()["error"]["fields"]
    assert named.status_code == 200 and named.json()["usage"]["memories"] == 9


# --- Auto-categorisation (the beat) ---------------------------------------------------------


@pytest.mark.django_db
def test_the_daily_job_files_the_memories_of_agents_that_opted_in_only(filed):
    # given: the owner opted in; the member has the same kind of memories and did not
    team, unfiled = filed
    member = team["member"].agent
    store(member, [{"content": text, "memory_category": "ops", "namespace": "team"} for text in OPS])
    members_deploy = store(member, [{"content": UNFILED["deploy"], "namespace": "team"}])[0]
    Agent.objects.filter(pk=team["owner"].agent.pk).update(configuration={AUTO_CATEGORISE_KEY: True})
    # when
    result = categorise_opted_in_agents.apply().get()
    # then
    assert result == {"agents": 1, "applied": 2}
    categories = dict(Memory.objects.filter(pk__in=[m.pk for m in unfiled.values()]).values_list("pk", "memory_category"))
    assert categories == {unfiled["deploy"].pk: "ops", unfiled["invoice"].pk: "finance", unfiled["lunch"].pk: "general"}
    assert Memory.objects.get(pk=members_deploy.pk).memory_category == "general"


@pytest.mark.django_db
def test_an_agent_opts_in_through_its_own_configuration_and_inactive_agents_are_skipped(filed):
    # given
    team, unfiled = filed
    body = {"configuration": {AUTO_CATEGORISE_KEY: True}}
    response = team["owner"].client.patch("/api/v2/agents/owner-agent", body, format="json")
    assert response.status_code == 200, response.content
    Agent.objects.filter(pk=team["owner"].agent.pk).update(is_active=False)
    # when
    result = categorise_opted_in_agents.apply().get()
    # then
    assert result == {"agents": 0, "applied": 0}
    assert Memory.objects.get(pk=unfiled["deploy"].pk).memory_category == "general"
