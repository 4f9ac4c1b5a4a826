"""Persona-era statistics, computed over what the caller may read (for API v1 and the persona tools)."""
from __future__ import annotations

from django.db.models import Avg, Count, Q

from core.models import count_by
from memories.models import Memory
from workflows.models import Task, TaskStatus

from . import adapter


def persona_stats(actor, agent) -> dict:
    """A persona's task record (imported counts plus v2 tasks the caller can read) and its memory count."""
    persona = adapter.persona_to_dict(agent)
    tasks = Task.objects.visible_to(actor).filter(assigned_agent=agent).aggregate(
        total=Count("id"),
        completed=Count("id", filter=Q(status=TaskStatus.COMPLETED)),
        failed=Count("id", filter=Q(status=TaskStatus.FAILED)),
        in_progress=Count("id", filter=Q(status=TaskStatus.IN_PROGRESS)),
    )
    total = persona["total_tasks"] + tasks["total"]
    successful = persona["successful_tasks"] + tasks["completed"]
    return {
        "persona_id": persona["id"],
        "name": agent.agent_id,
        "memory_count": Memory.objects.visible_to(actor).filter(agent=agent).count(),
        "total_tasks": total,
        "successful_tasks": successful,
        "failed_tasks": tasks["failed"],
        "tasks_in_progress": tasks["in_progress"],
        "success_rate": round(successful / total, 4) if total else 0.0,
        "average_response_time": persona["average_response_time"],
        "last_active_at": persona["last_active_at"],
    }


def memory_stats(actor, agent=None) -> dict:
    """Counts of the memories the caller may read (only `agent`'s when given): in total and by group."""
    memories = Memory.objects.visible_to(actor)
    if agent is not None:
        memories = memories.filter(agent=agent)
    totals = memories.aggregate(total=Count("id"), average_weight=Avg("learning_weight"),
                                with_embedding=Count("id", filter=Q(embedding_status="ready")))

    def counted(field: str) -> dict:
        rows = sorted(count_by(memories, field).items(), key=lambda row: (row[0] is None, row[0]))
        return {str(value) if value is not None else "system": n for value, n in rows}

    average_weight = totals["average_weight"]
    return {
        "total_memories": totals["total"],
        "memories_with_embedding": totals["with_embedding"],
        "average_importance": adapter.learning_weight_to_importance(average_weight) if average_weight is not None else None,
        "by_persona": counted("agent__agent_id"),
        "by_context_type": counted("memory_category"),
        "by_access_level": counted("access_level"),
    }
