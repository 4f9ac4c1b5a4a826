"""The operator dashboard on the admin index: counts and charts inside the operator's scope, one aggregate query
per section or chart, however many rows there are (tests/admin/test_dashboard.py pins the number)."""
from __future__ import annotations

import datetime

from django.db.models import Count, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

import access
from agents.models import Agent
from core.models import count_by
from memories import usage_log
from memories.choices import AccessLevel, EmbeddingStatus
from memories.models import LearningPattern, Memory
from namespaces.models import Namespace
from workflows.choices import RunStatus, TaskStatus
from workflows.models import Task, WorkflowRun

from . import charts

DAYS = 30
TOP = 10


def operator_dashboard(request) -> list[dict]:
    """Counts for the admin index, inside the operator's scope: one aggregate query per section."""
    user = request.user
    sections = []
    if user.has_perm("agents.view_agent"):
        agents = Agent.objects.filter(access.operator_scope_q(user)).aggregate(
            total=Count("pk"), active=Count("pk", filter=Q(is_active=True))
        )
        sections.append({"title": "Agents", "url": "admin:agents_agent_changelist", "rows": [
            ("All", agents["total"], ""), ("Active", agents["active"], "is_active__exact=1"),
        ]})
    if user.has_perm("namespaces.view_namespace"):
        total = Namespace.objects.filter(access.namespace_visibility_q(user)).count()
        sections.append({"title": "Namespaces", "url": "admin:namespaces_namespace_changelist", "rows": [
            ("All", total, ""),
        ]})
    if user.has_perm("memories.view_memory"):
        sections.append({"title": "Memories by embedding status", "url": "admin:memories_memory_changelist",
                         "rows": _embedding_rows(Memory.objects.visible_to(user))})
    for section in sections:
        section["url"] = reverse(section["url"])
    return sections


def _embedding_rows(memories) -> list[tuple]:
    """Memories by embedding status, and how long the longest-waiting pending one has waited (same query)."""
    stats = memories.embedding_summary()
    table = [("All", sum(count for count, _ in stats.values()), "")]
    table += [
        (label, stats.get(value, (0, None))[0], f"embedding_status__exact={value}")
        for value, label in EmbeddingStatus.choices
    ]
    oldest = stats.get(EmbeddingStatus.PENDING, (0, None))[1]
    waited = _duration(timezone.now() - oldest) if oldest else "none waits"
    table.append(("Pending: waiting longest", waited, f"embedding_status__exact={EmbeddingStatus.PENDING}"))
    return table


def _duration(delta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return "under a minute"


def operator_charts(request) -> list:
    """The dashboard's charts (inline SVG), each from one aggregate query over what the operator may see."""
    user = request.user
    drawn = []
    if user.has_perm("memories.view_memory"):
        memories = Memory.objects.visible_to(user)
        drawn.append(_memories_per_day(memories))
        drawn.append(charts.horizontal_bars(f"Most active agents: memories stored in {DAYS} days", [
            (agent_id, count) for agent_id, count in
            memories.filter(created_at__gte=_since(), agent__isnull=False).order_by().values_list("agent__agent_id")
            .annotate(n=Count("pk")).order_by("-n", "agent__agent_id")[:TOP]]))
        drawn.append(charts.horizontal_bars("Categories", [
            (category, count) for category, count in memories.order_by().values_list("memory_category")
            .annotate(n=Count("pk")).order_by("-n", "memory_category")[:TOP]]))
        drawn += _searches(user)
        drawn.append(_open_suggestions(user, memories))
    if user.has_perm("workflows.view_task"):
        drawn.append(_statuses("Tasks by status", Task.objects.filter(access.operator_scope_q(user)), TaskStatus))
    if user.has_perm("workflows.view_workflowrun"):
        runs = WorkflowRun.objects.filter(access.operator_scope_q(user, "workflow__namespace"))
        drawn.append(_statuses("Workflow runs by status", runs, RunStatus))
    return drawn


def _since() -> datetime.datetime:
    today = timezone.now().astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - datetime.timedelta(days=DAYS - 1)


def _days() -> list[datetime.date]:
    first = _since().date()
    return [first + datetime.timedelta(days=offset) for offset in range(DAYS)]


def _memories_per_day(memories):
    """Memories created per day over the last DAYS days (UTC), stacked by access level."""
    rows = (memories.filter(created_at__gte=_since()).order_by()
            .annotate(day=TruncDate("created_at", tzinfo=datetime.UTC)).values_list("day", "access_level")
            .annotate(n=Count("pk")))
    counts = {(day, level): n for day, level, n in rows}
    days = _days()
    return charts.stacked_columns(f"Memories created per day ({DAYS} days, UTC)", [day.isoformat() for day in days], {
        label: [counts.get((day, level), 0) for day in days] for level, label in
        ((AccessLevel.PRIVATE, "private"), (AccessLevel.SHARED, "shared"), (AccessLevel.PUBLIC, "public"),
         (AccessLevel.SYSTEM, "system"))})


def _searches(user) -> list:
    """Searches per day stacked by mode, and their p50/p95 latency per day: one statement over the usage events of
    the agents the operator may see (all of them for superusers)."""
    principal = access.Principal.of(user)
    agent_ids = None if principal.is_superuser else list(
        Agent.objects.filter(access.operator_scope_q(user)).values_list("pk", flat=True))
    rows = usage_log.searches_by_day(_since(), agent_ids=agent_ids)
    days = [day.isoformat() for day in _days()]
    counts = {(day.isoformat(), mode): count for day, mode, count, _, _ in rows if mode is not None}
    latency = {day.isoformat(): (p50, p95) for day, mode, _, p50, p95 in rows if mode is None}
    modes = ["hybrid", "semantic", "keyword"]
    return [
        charts.stacked_columns(f"Searches per day ({DAYS} days, UTC)", days, {
            mode: [counts.get((day, mode), 0) for day in days] for mode in modes}),
        charts.lines("Search latency per day (ms)", days, {
            "p50": [_rounded(latency.get(day, (None, None))[0]) for day in days],
            "p95": [_rounded(latency.get(day, (None, None))[1]) for day in days]}, unit=" ms"),
    ]


def _rounded(value):
    return None if value is None else round(value, 1)


def _open_suggestions(user, memories):
    """What the stored learning patterns of the operator's agents suggest, counted in memories the operator may
    read: returned but never used (lower their weight), stale (archive), missed by other members (share)."""
    kinds = {"lower_weight": set(), "archive_stale": set(), "share_with_members": set()}
    patterns = LearningPattern.objects.filter(access.operator_scope_q(user, "agent__namespace")).values_list(
        "returned_unused", "stale", "missed_by_members")
    for unused, stale, missed in patterns:
        kinds["lower_weight"].update(item["id"] for item in unused)
        kinds["archive_stale"].update((stale or {}).get("memory_ids", []))
        kinds["share_with_members"].update(item["id"] for item in missed)
    named = [str(pk) for pk in set().union(*kinds.values())]
    # A query even when nothing is named, so the dashboard's statements do not depend on the data.
    readable = {str(pk) for pk in memories.filter(pk__in=RawSQL("SELECT unnest(%s::uuid[])", [named]))
                .values_list("pk", flat=True)}
    return charts.horizontal_bars("Open learning suggestions (memories named)", [
        (kind.replace("_", " "), len(ids & readable)) for kind, ids in kinds.items()])


def _statuses(title: str, queryset, choices):
    counts = count_by(queryset, "status")
    return charts.horizontal_bars(title, [(label, counts.get(value, 0)) for value, label in choices.choices])
