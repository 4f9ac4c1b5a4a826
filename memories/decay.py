"""Weight decay: the learning_weight of memories no search returns drifts toward a floor, per agent, off by default.

An agent turns it on with `configuration.decay_half_life_days` (and optionally `decay_floor`, default
TMWS_DECAY_FLOOR). Each run moves, for each such agent, the weight of each of its memories above the floor by

    weight = floor + (weight - floor) * 0.5 ** (idle days in this period / half-life)

where the idle time counts from the agent's previous run, or from the memory's creation or its last return by a
search if later. A memory a search returned since the previous run therefore does not decay in this period, and
running twice at the same moment changes nothing. The clock starts with the first run after decay is turned
on: turning it on never decays the past. Weights below the floor (lowered by feedback) are left as they are.
Decay adds no history version (history keeps what a memory says and who may read it).
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from access import SYSTEM
from agents.models import Agent
from core.db import change_noted

from .models import Memory, MemoryUsage, WeightDecay

logger = logging.getLogger(__name__)
DECAY_CHANGE = "decay"  # read by the history trigger (migration 0015): no version for decay


def decaying_agents():
    return (Agent.objects.filter(configuration__decay_half_life_days__isnull=False)
            .exclude(configuration__decay_half_life_days=None).order_by("pk"))


def decay_parameters(agent) -> tuple[float, float]:
    """(half-life in days, floor) from the agent's configuration."""
    configuration = agent.configuration or {}
    floor = configuration.get("decay_floor")
    return float(configuration["decay_half_life_days"]), float(settings.TMWS_DECAY_FLOOR if floor is None else floor)


@transaction.atomic
def decay_agent(agent, now=None) -> int:
    """Decay one agent's weights up to `now`; returns how many memories changed (0 on the agent's first run)."""
    now = now or timezone.now()
    state = WeightDecay.objects.select_for_update().filter(agent=agent).first()
    if state is None:
        WeightDecay.objects.create(agent=agent, decayed_at=now)
        return 0
    if now <= state.decayed_at:
        return 0
    half_life, floor = decay_parameters(agent)
    with change_noted(SYSTEM, DECAY_CHANGE), connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Memory._meta.db_table} AS memory
               SET learning_weight = %(floor)s + (memory.learning_weight - %(floor)s) * power(0.5,
                       extract(epoch FROM %(now)s - greatest(%(since)s, memory.created_at, usage.last_accessed_at))
                       / (%(half_life)s * 86400.0))
              FROM {Memory._meta.db_table} AS subject
              LEFT JOIN {MemoryUsage._meta.db_table} AS usage ON usage.memory_id = subject.id
             WHERE subject.id = memory.id
               AND memory.agent_id = %(agent)s
               AND memory.learning_weight > %(floor)s
               AND greatest(%(since)s, memory.created_at, usage.last_accessed_at) < %(now)s
            """,
            {"floor": floor, "now": now, "since": state.decayed_at, "half_life": half_life, "agent": agent.pk},
        )
        changed = cursor.rowcount
    state.decayed_at = now
    state.save(update_fields=["decayed_at"])
    return changed


def decay_weights(now=None) -> dict[str, int]:
    """Decay every agent that asks for it, one transaction per agent; returns {agent_id: memories changed}."""
    # Turned off: the clock stops, so turning it on again does not decay the time it was off.
    WeightDecay.objects.exclude(agent__in=decaying_agents()).delete()
    changed = {}
    for agent in decaying_agents().iterator():
        changed[agent.agent_id] = decay_agent(agent, now)
    if any(changed.values()):
        logger.info("weights decayed: %s", changed)
    return changed
