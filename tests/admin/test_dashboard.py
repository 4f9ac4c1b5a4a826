"""The dashboard's charts: drawn on the server from the operator's scope, at a fixed number of queries."""
from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse

from memories.models import Memory
from tests.query_rows import add_memories, add_tasks

pytestmark = pytest.mark.django_db

CHART_TITLES = [
    "Memories created per day (30 days, UTC)", "Most active agents: memories stored in 30 days", "Categories",
    "Searches per day (30 days, UTC)", "Search latency per day (ms)", "Open learning suggestions (memories named)",
    "Tasks by status", "Workflow runs by status",
]


def _figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'<figure class="chart"><figcaption>([^<]+)</figcaption>(.*?)</figure>', html, re.S))


def test_the_index_draws_every_chart_as_inline_svg(superuser_client, one_of_each):
    html = superuser_client.get(reverse("admin:index")).content.decode()
    figures = _figures(html)
    assert list(figures) == CHART_TITLES
    assert all("<svg" in body for body in figures.values())
    # today's column holds the one shared memory; the agents chart names its owner
    assert re.search(r"<title>\d{4}-\d\d-\d\d: 1 shared</title>", figures[CHART_TITLES[0]])
    assert "<title>owner-agent: 1</title>" in figures[CHART_TITLES[1]]
    assert "<title>Pending: 1</title>" in figures["Tasks by status"]


def test_memories_per_day_count_the_last_thirty_days_by_access_level(superuser_client, team):
    from memories.contracts import StoreMemory
    from memories.services import create_memory

    owner = team["owner"].agent
    made = [create_memory(owner, StoreMemory.parse({"content": f"Note {n}.", "access_level": level}))
            for n, level in enumerate(["private", "private", "public"])]
    old = timezone_now() - datetime.timedelta(days=40)
    Memory.objects.filter(pk=made[2].pk).update(created_at=old)
    chart = _figures(superuser_client.get(reverse("admin:index")).content.decode())[CHART_TITLES[0]]
    titles = re.findall(r"<title>([^<]+)</title>", chart)
    assert titles == [f"{timezone_now().date().isoformat()}: 2 private"]


def timezone_now():
    from django.utils import timezone

    return timezone.now().astimezone(datetime.UTC)


def test_a_scoped_operator_sees_only_its_namespaces(team, make_operator):
    from memories.contracts import StoreMemory
    from memories.services import create_memory

    create_memory(team["owner"].agent, StoreMemory.parse({"content": "Team note.", "access_level": "shared"}))
    create_memory(team["outsider"].agent, StoreMemory.parse({"content": "Other note.", "access_level": "shared",
                                                             "memory_category": "secret-plans"}))
    client = make_operator("ops-team", {"team": ["view_namespace"]})
    figures = _figures(client.get(reverse("admin:index")).content.decode())
    assert "<title>owner-agent: 1</title>" in figures[CHART_TITLES[1]]
    assert "outsider-agent" not in figures[CHART_TITLES[1]]
    assert "secret-plans" not in "".join(figures.values())


def test_the_dashboard_reads_the_same_number_of_queries_for_more_rows(superuser_client, team,
                                                                       django_assert_num_queries):
    add_memories(team, 3)
    add_tasks(team, 3)
    with django_assert_num_queries(16):
        superuser_client.get(reverse("admin:index"))
    add_memories(team, 12, word="more")
    add_tasks(team, 12)
    with django_assert_num_queries(16):
        superuser_client.get(reverse("admin:index"))


def test_searches_and_their_latency_per_day_come_from_the_usage_events(superuser_client, team, make_operator):
    from memories.models import UsageEvent

    now = timezone_now()
    for agent, mode, duration in [(team["owner"].agent, "hybrid", 10.0), (team["owner"].agent, "keyword", 30.0),
                                  (team["outsider"].agent, "hybrid", 50.0)]:
        UsageEvent.objects.create(kind="search", agent=agent, at=now, mode=mode, duration_ms=duration, result_count=1)
    figures = _figures(superuser_client.get(reverse("admin:index")).content.decode())
    today = now.date().isoformat()
    assert re.findall(r"<title>([^<]+)</title>", figures["Searches per day (30 days, UTC)"]) == [
        f"{today}: 2 hybrid", f"{today}: 1 keyword"]
    assert re.findall(r"<title>([^<]+)</title>", figures["Search latency per day (ms)"]) == [
        f"{today}: 30 p50 ms", f"{today}: 48 p95 ms"]
    # an operator of `team` counts only its agents' searches
    scoped = _figures(make_operator("ops-team", {"team": ["view_namespace"]}).get(reverse("admin:index"))
                      .content.decode())
    assert re.findall(r"<title>([^<]+)</title>", scoped["Searches per day (30 days, UTC)"]) == [
        f"{today}: 1 hybrid", f"{today}: 1 keyword"]


def test_open_suggestions_count_only_memories_the_operator_may_read(superuser_client, team, make_operator):
    from memories.contracts import StoreMemory
    from memories.models import LearningPattern
    from memories.services import create_memory

    now = timezone_now()
    inside = create_memory(team["owner"].agent, StoreMemory.parse({"content": "Team note.", "access_level": "shared"}))
    outside = create_memory(team["outsider"].agent, StoreMemory.parse({"content": "Elsewhere."}))
    LearningPattern.objects.create(agent=team["owner"].agent, computed_at=now, window_start=now, window_end=now,
                                   returned_unused=[{"id": str(inside.pk)}, {"id": str(outside.pk)}],
                                   stale={"days": 90, "count": 1, "memory_ids": [str(inside.pk)]})
    title = "Open learning suggestions (memories named)"
    every = _figures(superuser_client.get(reverse("admin:index")).content.decode())[title]
    scoped = _figures(make_operator("ops-team", {"team": ["view_namespace"]}).get(reverse("admin:index"))
                      .content.decode())[title]
    assert re.findall(r"<title>([^<]+)</title>", every) == ["lower weight: 2", "archive stale: 1",
                                                           "share with members: 0"]
    assert re.findall(r"<title>([^<]+)</title>", scoped) == ["lower weight: 1", "archive stale: 1",
                                                            "share with members: 0"]
