"""The operator dashboard on the admin index: counts and charts inside the operator's scope, one aggregate query
per section or chart, however many rows there are (tests/admin/test_dashboard.py pins the number)."""
from __future__ import annotations

import datetime

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

import access
from agents.models import Agent
from core.models import count_by
from memories.choices import AccessLevel, EmbeddingStatus
from memories.models import Memory
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


def _statuses(title: str, queryset, choices):
    counts = count_by(queryset, "status")
    return charts.horizontal_bars(title, [(label, counts.get(value, 0)) for value, label in choices.choices])
