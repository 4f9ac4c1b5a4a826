"""Contextual search: the conversation and the task move the ranking in the expected direction."""
from __future__ import annotations

import pytest

from memories.contextual import blend, clean_contextual_request, contextual_search

from .conftest import ids

# Similarities meet thresholds and decide orders here: every test runs at both precisions.
pytestmark = pytest.mark.usefixtures("precision")

BILLING = "Database choice for the billing service: PostgreSQL, because invoices need transactions."
ANALYTICS = "Database choice for the analytics pipeline: ClickHouse, because event scans must be fast."


@pytest.fixture
def choices(team, store):
    billing, analytics = store(team["owner"].agent, [
        {"content": BILLING, "context_tags": ["billing", "payments"]},
        {"content": ANALYTICS, "context_tags": ["analytics", "events"]},
    ], namespace="team", access_level="shared")
    return team["owner"].agent, billing, analytics


def run(actor, **body):
    return contextual_search(actor, *clean_contextual_request({"query": "which database did we pick?", **body}))


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
@pytest.mark.parametrize("topic", ["billing", "analytics"])
def test_conversation_context_lifts_the_memory_it_is_about(choices, mode, topic):
    # given
    owner, billing, analytics = choices
    turns = {
        "billing": ["We are rewriting how customers get charged.", "Invoices and refunds go through it."],
        "analytics": ["The dashboard needs event counts per minute.", "We scan billions of click events."],
    }[topic]
    # when
    result = run(owner, mode=mode, conversation_context=[{"role": "user", "content": t} for t in turns])
    # then
    expected = billing if topic == "billing" else analytics
    assert ids(result)[0] == str(expected.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_task_tags_lift_memories_that_carry_them(choices, mode):
    # given
    owner, billing, analytics = choices
    plain = run(owner, mode=mode)
    # when
    for_analytics = run(owner, mode=mode, task_context={"tags": ["analytics"]})
    for_billing = run(owner, mode=mode, task_context={"tags": ["billing", "payments"]})
    # then
    assert len(plain.hits) == 2
    assert ids(for_analytics)[0] == str(analytics.pk)
    assert ids(for_billing)[0] == str(billing.pk)


@pytest.mark.django_db
def test_task_namespace_lifts_memories_in_it(team, store):
    # given: the same note in two namespaces the reader sees
    owner = team["owner"].agent
    in_team, in_company = (
        store(owner, [{"content": "Backups run at two in the morning."}], namespace="team", access_level="public")[0],
        store(team["ancestor"].agent, [{"content": "Backups run at two in the morning."}], namespace="company",
              access_level="public")[0],
    )
    # when
    to_team = run(owner, task_context={"namespace": "team"}, query="when do backups run")
    to_company = run(owner, task_context={"namespace": "company"}, query="when do backups run")
    # then
    assert ids(to_team) == [str(in_team.pk), str(in_company.pk)]
    assert ids(to_company) == [str(in_company.pk), str(in_team.pk)]


@pytest.mark.django_db
def test_context_moves_scores_but_keeps_a_clearly_better_match_first(choices):
    # given: the query names billing outright; analytics talk must not override it
    owner, billing, analytics = choices
    # when
    result = run(owner, query="PostgreSQL for invoices in the billing service",
                 conversation_context=[{"role": "user", "content": "event scans on the dashboard"}])
    # then
    assert ids(result)[0] == str(billing.pk)


def test_blend_keeps_unit_length_and_leans_on_the_latest_turn():
    # given
    query, old, new = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    # when
    vector = blend(query, [old, new])
    # then
    assert abs(sum(v * v for v in vector) - 1.0) < 1e-6
    assert vector[0] > vector[2] > vector[1] > 0
