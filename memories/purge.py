"""Purging an agent: erase it and everything of it, for good (operators; `manage.py purge_agent`, the API).

Erased: its private memories (and, unless handed to another agent, its shared, public and system ones) with
their history, hit counters, votes and shares; the versions recording it as the owner of what stays private to
it, and its name on every other version; the shares granted to it, its votes, its memberships, its keys, its
user and the agent row itself. Tasks, workflows and runs it created, was assigned or started stay, without it.
Memories handed over keep their history, now under their new owner (their private past excepted).

A dry run counts the same rows in the same transaction and rolls it back, so the counts are exactly what a
purge would erase at that moment. Lives in `memories` because memories are most of what goes; the agents API
reaches it through the extension point `purge_agent` (core.extensions).
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection, transaction

import access
import audit
from agents.contracts import PurgeAgent
from agents.models import Agent, ApiKey
from core.db import as_service
from core.errors import Forbidden, InvalidInput
from namespaces.services import get_agent

from .choices import AccessLevel
from .models import Memory, MemoryFeedback, MemoryUserObjectPermission, MemoryVersion


class _DryRun(Exception):
    """Rolls a dry run's transaction back."""


def _recipient(actor, agent: Agent, hand_to: str | None) -> Agent | None:
    if hand_to is None:
        return None
    recipient = get_agent(hand_to, field="hand_to")
    if recipient.pk == agent.pk:
        raise InvalidInput("hand_to must name another agent than the one purged.", field="hand_to")
    if not access.can_manage_agent(actor, recipient):
        raise Forbidden(f"No right to hand memories to agent '{recipient.agent_id}'.", field="hand_to")
    return recipient


def _execute(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _erase(agent: Agent, recipient: Agent | None) -> dict[str, int]:
    """Delete (or hand over) every row of the agent; returns counts by kind. Runs inside a transaction."""
    user = agent.user
    owned = Memory.objects.filter(agent=agent)
    counts = {"handed_over": 0}
    if recipient is not None:
        handed = list(owned.exclude(access_level=AccessLevel.PRIVATE).values_list("pk", flat=True))
        counts["handed_over"] = owned.filter(pk__in=handed).update(agent=recipient)
        MemoryVersion.objects.filter(memory_id__in=handed, agent=agent).exclude(
            access_level=AccessLevel.PRIVATE).update(agent=recipient)
    counts["memories"] = owned.count()
    counts["versions"] = (
        MemoryVersion.objects.filter(memory__in=owned).count()
        + MemoryVersion.objects.filter(agent=agent).exclude(memory__in=owned).count()
    )
    counts["shares_granted_to_it"] = MemoryUserObjectPermission.objects.filter(user=user).exclude(
        content_object__in=owned).count()
    counts["shares_of_its_memories"] = MemoryUserObjectPermission.objects.filter(content_object__in=owned).count()
    counts["votes"] = MemoryFeedback.objects.filter(voter=user).count()
    counts["keys"] = ApiKey.objects.filter(user=user).count()
    counts["memberships"] = len(access.member_namespace_ids(agent) - {agent.namespace_id})
    # Its memories: the history trigger erases their versions; the database cascades to retired originals.
    owned.delete()
    # Its private past of memories that now belong to another agent, and its name on the versions it made.
    MemoryVersion.objects.filter(agent=agent).delete()
    MemoryVersion.objects.filter(changed_by_agent=agent).update(changed_by_agent=None)
    agent.delete()  # WeightDecay rows go with it; tasks, workflows and runs keep their rows without it
    get_user_model().objects.filter(pk=user.pk).delete()  # keys, shares, votes and memberships cascade
    return counts


@transaction.atomic
@as_service  # rows of every principal go; access has decided that the actor may
def purge_agent(actor, agent: Agent, data: PurgeAgent) -> dict:
    """Erase `agent` (or, with `dry_run`, count what would go); returns {"agent_id", "dry_run", "counts"}."""
    if not access.can_purge_agent(actor, agent):
        raise Forbidden("Only an operator who manages the agent may purge it (superusers for admin agents).")
    recipient = _recipient(actor, agent, data.hand_to)
    agent = Agent.objects.select_for_update().select_related("user").get(pk=agent.pk)
    outcome = {"agent_id": agent.agent_id, "dry_run": data.dry_run, "hand_to": data.hand_to}
    if not data.dry_run:
        namespace = agent.namespace
        report = {**outcome, "counts": _erase(agent, recipient)}
        # The one row that names the agent afterwards: that it was purged, by whom, and the counts (no content).
        audit.record(actor, audit.AuditAction.AGENT_PURGE, object_type="agents.agent", object_id=report["agent_id"],
                     namespace=namespace, after={"hand_to": data.hand_to, **report["counts"]})
        return report
    try:
        with transaction.atomic():
            counts = _erase(agent, recipient)
            raise _DryRun
    except _DryRun:
        pass
    return {**outcome, "counts": counts}
