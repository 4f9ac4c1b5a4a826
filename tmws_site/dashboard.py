"""The operator dashboard on the admin index: counts inside the operator's scope, one aggregate query per section."""
from __future__ import annotations

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

import access
from agents.models import Agent
from core.models import count_by
from memories.choices import EmbeddingStatus
from memories.models import Memory
from namespaces.models import Namespace
from workflows.choices import TaskStatus
from workflows.models import Task


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
    if user.has_perm("workflows.view_task"):
        sections.append({"title": "Tasks by status", "url": "admin:workflows_task_changelist",
                         "rows": _by_status(Task.objects.filter(access.operator_scope_q(user)), "status", TaskStatus)})
    for section in sections:
        section["url"] = reverse(section["url"])
    return sections


def _by_status(queryset, field: str, choices) -> list[tuple]:
    counts = count_by(queryset, field)
    rows = [("All", sum(counts.values()), "")]
    rows += [(label, counts.get(value, 0), f"{field}__exact={value}") for value, label in choices.choices]
    return rows


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
