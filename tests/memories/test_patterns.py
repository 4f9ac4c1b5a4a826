"""Usage events and the pattern job: fixed usage histories give exact patterns and suggestions; the job is
idempotent and resumable; patterns show only memories the reader may read (API, MCP, service)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from access import SYSTEM
from memories import learning, patterns
from memories.contracts import StoreMemories
from memories.embedding_jobs import embed_batch
from memories.hits import record_events
from memories.models import LearningPattern, Memory, UsageEvent
from memories.services import bulk_create_memories
from memories.tasks import learn_all_patterns
from memories.usage import follow_up_event, search_event
from namespaces.models import Namespace
from tests.database_rows import table_sizes

pytestmark = pytest.mark.django_db

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)  # the window: 2029-12-16 up to 2030-01-15 (midnight, UTC)
DEPLOY = [
    "Every deploy to staging needs the lead's approval.",
    "Roll back a broken deploy with the release script.",
    "A production deploy happens on Tuesday mornings.",
    "Announce each deploy in the release channel first.",
]
INVOICE = [
    "Each invoice is paid within thirty days of receipt.",
    "Send a supplier invoice to accounting for payment.",
    "An unpaid invoice older than sixty days goes to collections.",
    "Scan every paper invoice before filing it.",
]


def store(agent, items: list[dict], actor=None) -> list[Memory]:
    memories = bulk_create_memories(actor or agent, StoreMemories.parse({"memories": items}))
    embed_batch([m.pk for m in memories])
    return [Memory.objects.get(pk=m.pk) for m in memories]


@pytest.fixture
def history(team):
    """owner-agent: four deploy notes in `team`, four invoice notes in `other` (all private, category 'notes'), an
    old note never returned; six searches returning deploy 1, deploy 2, invoice 1, each followed by a read of
    deploy 1; an operator's search and another agent's events that must not count."""
    owner = team["owner"].agent
    deploy = store(owner, [{"content": text, "namespace": "team", "memory_category": "notes"} for text in DEPLOY])
    invoice = store(owner, [{"content": text, "namespace": "other", "memory_category": "notes", "agent_id":
                             owner.agent_id} for text in INVOICE], actor=SYSTEM)
    [old] = store(owner, [{"content": "The old office had a blue door.", "namespace": "team"}])
    Memory.objects.filter(agent=owner).update(created_at=NOW - timedelta(days=2))
    Memory.objects.filter(pk=old.pk).update(embedding_status="failed", embedding=None, embedding_model="",
                                            created_at=NOW - timedelta(days=60))
    returned = [deploy[0].pk, deploy[1].pk, invoice[0].pk]
    events = []
    for minute in range(6):
        at = datetime(2030, 1, 10, 9, minute * 5, tzinfo=UTC)
        events.append(search_event(owner, mode="hybrid", duration_ms=12.5, memory_ids=returned, at=at))
        events.append(follow_up_event(owner, "read", deploy[0].pk, at=at + timedelta(minutes=2)))
    # outside the window (after its midnight), and a read two hours after the search: neither counts as use
    events.append(search_event(owner, mode="keyword", duration_ms=3.0, memory_ids=[deploy[1].pk],
                               at=datetime(2030, 1, 15, 1, 0, tzinfo=UTC)))
    events.append(follow_up_event(owner, "read", deploy[1].pk, at=datetime(2030, 1, 10, 11, 30, tzinfo=UTC)))
    events.append(search_event(None, mode="hybrid", duration_ms=9.0, memory_ids=returned,
                               at=datetime(2030, 1, 10, 9, 0, tzinfo=UTC)))
    events.append(search_event(team["outsider"].agent, mode="hybrid", duration_ms=9.0, memory_ids=returned,
                               at=datetime(2030, 1, 10, 9, 0, tzinfo=UTC)))
    assert record_events(events) == len(events)
    return {"team": team, "owner": owner, "deploy": [str(m.pk) for m in deploy],
            "invoice": [str(m.pk) for m in invoice], "old": str(old.pk)}


def pairs(*pairs_and_counts) -> list[dict]:
    return [{"memory_ids": sorted([a, b]), "count": count} for a, b, count in pairs_and_counts]


# --- The job ----------------------------------------------------------------------------------------


def test_a_fixed_history_gives_exact_patterns(history):
    # when
    pattern, changed = patterns.learn_patterns(history["owner"], NOW)
    # then
    deploy, invoice = history["deploy"], history["invoice"]
    assert changed
    assert (pattern.window_start, pattern.window_end) == (datetime(2029, 12, 16, tzinfo=UTC),
                                                            datetime(2030, 1, 15, tzinfo=UTC))
    assert pattern.events == 13 and pattern.memories == 8
    topics = {topic["labels"][0]: topic for topic in pattern.topics}
    assert set(topics) == {"deploy", "invoice"}
    assert sorted(topics["deploy"]["memory_ids"]) == sorted(deploy) and topics["deploy"]["size"] == 4
    assert sorted(topics["invoice"]["memory_ids"]) == sorted(invoice) and topics["invoice"]["size"] == 4
    expected_pairs = pairs((deploy[0], deploy[1], 6), (deploy[0], invoice[0], 6), (deploy[1], invoice[0], 6))
    assert pattern.co_access == sorted(expected_pairs, key=lambda pair: pair["memory_ids"])
    assert pattern.search_categories == {"notes": 6}
    assert pattern.active_hours == [0] * 9 + [12] + [0, 1] + [0] * 12
    assert pattern.stale == {"days": 30, "count": 1, "memory_ids": [history["old"]]}
    assert sorted(pattern.returned) == sorted([[deploy[0], 6, 6, 6], [deploy[1], 6, 0, 0], [invoice[0], 6, 0, 0]])
    assert pattern.returned_unused == sorted([{"id": deploy[1], "returned": 6}, {"id": invoice[0], "returned": 6}],
                                             key=lambda item: item["id"])
    assert pattern.missed_by_members == []


def test_running_the_job_twice_changes_nothing(history):
    # given
    first, _ = patterns.learn_patterns(history["owner"], NOW)
    stored = LearningPattern.objects.filter(agent=history["owner"]).values().get()
    before = table_sizes()
    # when
    again, changed = patterns.learn_patterns(history["owner"], NOW + timedelta(hours=3))
    # then
    assert not changed
    assert LearningPattern.objects.filter(agent=history["owner"]).values().get() == stored
    assert table_sizes() == before


def test_the_nightly_job_resumes_with_the_agents_not_done(history, monkeypatch):
    # given: one agent done already for this window
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    patterns.learn_patterns(history["owner"], NOW)
    # when
    sent = learn_all_patterns.apply().get()
    # then: every other active agent got its pattern; a second run sends nothing
    agents = get_user_model().objects.filter(agent__is_active=True).count()
    assert sent == agents - 1
    assert LearningPattern.objects.count() == agents
    assert learn_all_patterns.apply().get() == 0


def test_the_command_learns_one_agent_with_progress(history, capsys):
    # when
    call_command("learn_patterns", "--agent", "owner-agent")
    # then
    out = capsys.readouterr().out
    assert "[1/1] owner-agent:" in out and "Done: 1 agents, 1 patterns changed, 0 failed." in out
    assert LearningPattern.objects.filter(agent=history["owner"]).exists()


def test_members_searches_that_missed_point_at_a_private_memory(team):
    # given: the member searched three times, found notes about the wifi and used none of them;
    # the owner keeps the answer private
    owner, member = team["owner"].agent, team["member"].agent
    wanted = store(owner, [{"content": "The guest wifi password is on the fridge.", "namespace": "team"}])[0]
    store(owner, [{"content": "Invoices are paid within thirty days.", "namespace": "team"}])
    found = store(member, [{"content": text, "namespace": "team"} for text in (
        "The guest wifi password changes every month.", "Where is the guest wifi password written?")])
    events = [search_event(member, mode="hybrid", duration_ms=5, memory_ids=[m.pk for m in found],
                           at=datetime(2030, 1, 12, hour, tzinfo=UTC)) for hour in (8, 10, 14)]
    record_events(events)
    # when
    pattern, _ = patterns.learn_patterns(owner, NOW)
    # then
    assert pattern.missed_by_members == [{"id": str(wanted.pk), "searches": 3, "agents": 1}]
    advice = {item["kind"]: item for item in learning.pattern_suggestions(owner)}
    assert advice["share_with_members"]["memory_ids"] == [str(wanted.pk)]
    assert advice["share_with_members"]["apply"] == {
        "endpoint": f"PATCH /api/v2/memories/{wanted.pk}", "tool": "update_memory", "body": {"access_level": "shared"}}


def test_a_used_search_is_not_a_miss(team):
    # given: the same searches, each followed by a read within the hour
    owner, member = team["owner"].agent, team["member"].agent
    store(owner, [{"content": "The guest wifi password is on the fridge.", "namespace": "team"}])
    found = store(member, [{"content": "The guest wifi password changes every month.", "namespace": "team"}])
    events = []
    for hour in (8, 10, 14):
        at = datetime(2030, 1, 12, hour, tzinfo=UTC)
        events += [search_event(member, mode="hybrid", duration_ms=5, memory_ids=[found[0].pk], at=at),
                   follow_up_event(member, "feedback", found[0].pk, useful=True, at=at + timedelta(minutes=1))]
    record_events(events)
    # when / then
    assert patterns.learn_patterns(owner, NOW)[0].missed_by_members == []


# --- Suggestions --------------------------------------------------------------------------------------


def test_suggestions_from_the_pattern_and_each_applies_in_one_call(history):
    # given
    team, deploy, invoice = history["team"], history["deploy"], history["invoice"]
    patterns.learn_patterns(history["owner"], NOW)
    # when
    advice = {item["kind"]: item for item in learning.insights(history["owner"])["suggestions"]}
    # then
    split = advice["split_category"]
    assert split["category"] == "notes" and split["count"] == 4
    assert (split["new_category"], sorted(split["memory_ids"])) in [
        ("notes-deploy", sorted(deploy)), ("notes-invoice", sorted(invoice))]
    assert sorted(advice["lower_weight"]["memory_ids"]) == sorted([deploy[1], invoice[0]])
    assert advice["archive_stale"]["memory_ids"] == [history["old"]]
    assert "share_with_members" not in advice
    # when: each applied by the call it names
    client = team["owner"].client
    for kind in ("split_category", "lower_weight", "archive_stale"):
        apply = advice[kind]["apply"]
        assert apply["endpoint"] == "POST /api/v2/memories/bulk-update" and apply["tool"] == "bulk_update_memories"
        response = client.post("/api/v2/memories/bulk-update", apply["body"], format="json")
        assert response.status_code == 200, response.content
    # then
    moved = Memory.objects.filter(pk__in=split["memory_ids"]).values_list("memory_category", flat=True)
    assert set(moved) == {split["new_category"]}
    assert set(Memory.objects.filter(pk__in=[deploy[1], invoice[0]]).values_list("learning_weight", flat=True)) == {0.5}
    assert Memory.objects.get(pk=history["old"]).expires_at is not None


def test_bulk_update_is_all_or_nothing(history):
    # given: one of the memories belongs to someone else
    team = history["team"]
    theirs = store(team["member"].agent, [{"content": "Member note.", "namespace": "team", "access_level": "shared"}])
    body = {"memory_ids": [history["deploy"][0], str(theirs[0].pk)], "learning_weight": 0.2}
    before = table_sizes()
    # when
    refused = team["owner"].client.post("/api/v2/memories/bulk-update", body, format="json")
    hidden = team["outsider"].client.post("/api/v2/memories/bulk-update", body, format="json")
    empty = team["owner"].client.post("/api/v2/memories/bulk-update", {"memory_ids": [history["deploy"][0]]},
                                      format="json")
    # then
    assert refused.status_code == 403 and hidden.status_code == 404 and empty.status_code == 400
    assert Memory.objects.filter(learning_weight=0.2).count() == 0
    assert table_sizes() == before


# --- Who reads a pattern --------------------------------------------------------------------------------


@pytest.fixture
def learned(history):
    patterns.learn_patterns(history["owner"], NOW)
    return history


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_agent_reads_its_whole_pattern(learned):
    # when
    response = learned["team"]["owner"].client.get("/api/v2/agents/owner-agent/patterns")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["agent_id"] == "owner-agent" and body["events"] == 13
    assert {topic["labels"][0] for topic in body["topics"]} == {"deploy", "invoice"}
    assert len(body["co_access"]) == 3 and body["search_categories"] == {"notes": 6}
    assert body["stale"]["memory_ids"] == [learned["old"]]


@pytest.mark.parametrize("asker", ["member", "outsider", "descendant"])
def test_other_agents_may_not_read_it(learned, asker):
    # when
    response = learned["team"][asker].client.get("/api/v2/agents/owner-agent/patterns")
    # then
    assert response.status_code == 403
    assert "topics" not in response.json()


def test_an_unknown_agent_answers_404(learned):
    assert learned["team"]["owner"].client.get("/api/v2/agents/ghost/patterns").status_code == 404


def test_an_operator_scoped_to_team_sees_only_the_memories_of_team(learned):
    # given: change rights on `team` (the agent's home) only; the invoice notes live in `other`
    user = get_user_model().objects.create_user("scoped-op", password="pw-123456!", is_staff=True)
    assign_perm("change_namespace", user, Namespace.objects.get(namespace="team"))
    deploy, invoice = learned["deploy"], learned["invoice"]
    # when
    body = _client(user).get("/api/v2/agents/owner-agent/patterns").json()
    # then: no invoice id anywhere, and no word of the invoice notes
    text = str(body)
    assert all(pk not in text for pk in invoice)
    assert "invoice" not in text
    assert [sorted(topic["memory_ids"]) for topic in body["topics"]] == [sorted(deploy)]
    assert body["topics"][0]["labels"][0] == "deploy"
    assert body["co_access"] == pairs((deploy[0], deploy[1], 6))
    assert body["returned_unused"] == [{"id": deploy[1], "returned": 6}]
    assert body["search_categories"] == {"notes": 6}


def test_an_operator_scoped_elsewhere_may_not_read_it(learned):
    user = get_user_model().objects.create_user("other-op", password="pw-123456!", is_staff=True)
    assign_perm("change_namespace", user, Namespace.objects.get(namespace="other"))
    assert _client(user).get("/api/v2/agents/owner-agent/patterns").status_code == 403


def test_an_admin_agent_sees_none_of_the_agents_private_memories(learned):
    # when
    response = learned["team"]["admin"].client.get("/api/v2/agents/owner-agent/patterns")
    # then: the agent's memories are private, which admin agents do not read
    assert response.status_code == 200
    body = response.json()
    assert (body["topics"], body["co_access"], body["returned_unused"], body["search_categories"]) == ([], [], [], {})
    assert body["stale"] == {"days": 30, "count": 0, "memory_ids": []}
    assert body["events"] == 13


def test_a_superuser_reads_it_whole_and_in_the_admin(learned, operator_user):
    from django.test import Client

    assert len(_client(operator_user).get("/api/v2/agents/owner-agent/patterns").json()["co_access"]) == 3
    client = Client()
    client.force_login(operator_user)
    page = client.get(f"/admin/memories/learningpattern/{learned['owner'].pk}/change/")
    assert page.status_code == 200 and learned["deploy"][0] in page.content.decode()
    assert client.post(f"/admin/memories/learningpattern/{learned['owner'].pk}/delete/", {"post": "yes"}).status_code == 403


def test_a_deleted_memory_drops_out_of_the_pattern_read(learned):
    # given
    Memory.objects.filter(pk=learned["deploy"][1]).delete()
    # when
    body = learned["team"]["owner"].client.get("/api/v2/agents/owner-agent/patterns").json()
    # then
    assert learned["deploy"][1] not in str(body)


def test_without_a_pattern_the_answer_is_empty(team):
    body = team["owner"].client.get("/api/v2/agents/owner-agent/patterns").json()
    assert body["computed_at"] is None and body["topics"] == [] and body["active_hours"] == [0] * 24


# --- Usage events -----------------------------------------------------------------------------------


def test_a_search_and_a_read_through_the_api_leave_events(team, django_capture_on_commit_callbacks):
    # given
    owner = team["owner"].agent
    [memory] = store(owner, [{"content": "The release notes are in the wiki.", "namespace": "team"}])
    # when
    with django_capture_on_commit_callbacks(execute=True):
        found = team["owner"].client.post("/api/v2/memories/search", {"query": "release notes wiki", "limit": 3,
                                                                       "mode": "keyword"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        team["owner"].client.get(f"/api/v2/memories/{memory.pk}")
    with django_capture_on_commit_callbacks(execute=True):
        team["owner"].client.post(f"/api/v2/memories/{memory.pk}/feedback", {"useful": True}, format="json")
    # then
    assert found.status_code == 200
    rows = list(UsageEvent.objects.order_by("at", "id").values_list("kind", "agent_id", "mode", "result_count",
                                                                     "memory_ids", "useful", "query"))
    assert rows == [("search", owner.pk, "keyword", 1, [memory.pk], None, ""),
                    ("read", owner.pk, "", 0, [memory.pk], None, ""),
                    ("feedback", owner.pk, "", 0, [memory.pk], True, "")]
    assert UsageEvent.objects.get(kind="search").duration_ms > 0


def test_query_text_is_kept_only_when_asked(team, settings, django_capture_on_commit_callbacks):
    settings.TMWS_LOG_QUERIES = True
    with django_capture_on_commit_callbacks(execute=True):
        team["owner"].client.post("/api/v2/memories/search", {"query": "nothing here", "mode": "keyword"}, format="json")
    assert list(UsageEvent.objects.values_list("kind", "result_count", "query")) == [("search", 0, "nothing here")]


def test_old_events_are_deleted_by_the_retention_job(team, settings):
    from memories.tasks import delete_old_usage_events

    settings.TMWS_USAGE_RETENTION_DAYS = 10
    owner = team["owner"].agent
    record_events([search_event(owner, mode="hybrid", duration_ms=1, memory_ids=[], at=datetime(2000, 1, 1, tzinfo=UTC)),
                   search_event(owner, mode="hybrid", duration_ms=1, memory_ids=[])])
    assert delete_old_usage_events.apply().get() == 1
    assert UsageEvent.objects.count() == 1


def test_searches_per_day_with_latency(team):
    from memories.usage_log import daily_searches

    owner = team["owner"].agent
    record_events([search_event(owner, mode="hybrid", duration_ms=ms, memory_ids=[],
                                at=datetime(2030, 1, 2, 10, tzinfo=UTC)) for ms in (10, 20, 30)])
    assert daily_searches(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 3, tzinfo=UTC)) == [
        {"day": "2030-01-02", "mode": "hybrid", "searches": 3, "p50_ms": 20.0, "p95_ms": 29.0}]


def test_deleted_memories_leave_no_word_in_events_or_patterns(team, django_capture_on_commit_callbacks):
    # given: a topic whose memories share a made-up word, searched for and learned
    from django.utils import timezone

    from tests.database_rows import rows_mentioning

    owner = team["owner"].agent
    secret = store(owner, [{"content": f"The {word} quxbarzlewort rule.", "namespace": "team"}
                           for word in ("first", "second", "third")])
    store(owner, [{"content": text, "namespace": "team"} for text in INVOICE[:3]])
    with django_capture_on_commit_callbacks(execute=True):
        team["owner"].client.post("/api/v2/memories/search", {"query": "quxbarzlewort", "mode": "keyword"},
                                  format="json")
    pattern, _ = patterns.learn_patterns(owner, timezone.now() + timedelta(days=1))
    assert "quxbarzlewort" in [word for topic in pattern.topics for word in topic["labels"]]
    # when
    for memory in secret:
        assert team["owner"].client.delete(f"/api/v2/memories/{memory.pk}").status_code == 204
    # then: events kept ids only, and the topics (words of memories) were cleared with the memories
    assert rows_mentioning("quxbarzlewort") == {}
    assert LearningPattern.objects.get(agent=owner).topics == []


def test_a_task_naming_memories_records_their_use(team, django_capture_on_commit_callbacks):
    owner = team["owner"].agent
    [memory] = store(owner, [{"content": "Deploy checklist.", "namespace": "team"}])
    with django_capture_on_commit_callbacks(execute=True):
        response = team["owner"].client.post("/api/v2/tasks", {"title": "Ship it", "metadata": {
            "memory_ids": [str(memory.pk), "00000000-0000-0000-0000-000000000000", "nonsense"]}}, format="json")
    assert response.status_code == 201, response.content
    assert list(UsageEvent.objects.values_list("kind", "memory_ids")) == [("task", [memory.pk])]
