"""Usage events: what each search returned, and which of those memories the agent then read, voted on or used.

A search event names the agent (None for an operator), its mode, how long the ranking took, how many results
it returned and their ids, best first. A follow-up event names the agent, the kind (read, feedback with its
vote, used in a task) and the one memory. Events ride in the search-hit buffer (memories.hits) once the
request commits, so they cost a search no statement of its own; the flush writes them in one INSERT.

No query text is kept unless TMWS_LOG_QUERIES=1. Events keep memory ids, never content; they are deleted after
TMWS_USAGE_RETENTION_DAYS by the beat (memories.usage_log). The pattern job (memories.patterns) reads them.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access import Principal

from .choices import UsageKind


def _agent_key(actor) -> str | None:
    agent = Principal.of(actor).agent
    return str(agent.pk) if agent is not None else None


def search_event(actor, *, mode: str, duration_ms: float, memory_ids, query: str = "", at=None) -> dict:
    """A search event, ready for the buffer (a JSON object)."""
    return {
        "kind": UsageKind.SEARCH.value,
        "agent": _agent_key(actor),
        "at": (at or timezone.now()).isoformat(),
        "mode": mode,
        "duration_ms": round(float(duration_ms), 3),
        "result_count": len(memory_ids),
        "memory_ids": [str(pk) for pk in memory_ids],
        "query": query if settings.TMWS_LOG_QUERIES else "",
    }


def follow_up_event(actor, kind: str, memory_id, *, useful: bool | None = None, at=None) -> dict | None:
    """A read, a vote or a use in a task of one memory by an agent; None for operators (their use is not learned)."""
    agent = _agent_key(actor)
    if agent is None:
        return None
    return {"kind": UsageKind(kind).value, "agent": agent, "at": (at or timezone.now()).isoformat(),
            "memory_ids": [str(memory_id)], "result_count": 0, "useful": useful}


def track(hit_ids, events) -> None:
    """Queue hits and events for the buffer once the surrounding transaction commits (never for a rolled-back one).

    A failure to queue them (the broker down) is logged and never fails the request.
    """
    events = [event for event in events if event is not None]
    hit_ids = [str(pk) for pk in hit_ids]
    if not hit_ids and not events:
        return
    from .tasks import queue_hits

    transaction.on_commit(lambda: queue_hits(hit_ids, events), robust=True)


def track_use(actor, kind: str, memory_ids, *, useful: bool | None = None) -> None:
    """Record that an agent used these memories (read, feedback, task); operators are not tracked."""
    track([], [follow_up_event(actor, kind, pk, useful=useful) for pk in memory_ids])


# A task names the memories it was worked out from under this metadata key (docs/learning.md).
TASK_MEMORY_IDS_KEY = "memory_ids"
MAX_TASK_MEMORY_IDS = 100


def track_task_use(actor, metadata) -> None:
    """Record the memories a task's metadata names (`memory_ids`) as used in a task, those the agent may read only."""
    named = metadata.get(TASK_MEMORY_IDS_KEY) if isinstance(metadata, dict) else None
    if not isinstance(named, list) or Principal.of(actor).agent is None:
        return
    ids = {str(value) for value in named[:MAX_TASK_MEMORY_IDS] if isinstance(value, str) and _is_uuid(value)}
    if ids:
        from .models import Memory

        readable = Memory.objects.visible_to(actor).filter(pk__in=ids).order_by("pk").values_list("pk", flat=True)
        track_use(actor, UsageKind.TASK, list(readable))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
