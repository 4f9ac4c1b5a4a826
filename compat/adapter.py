"""The persona adapter: how a persona-era persona maps onto a v2 Agent, and back.

A persona becomes an agent whose `agent_id` is the persona's name and whose `agent_type` is
`persona`. What has no v2 column is kept on the agent:

- `capabilities` (a JSON object) holds `persona_type`, `persona_role`, `specialties` and the
  persona's capability list under `capabilities`;
- `configuration` is the persona's `config`;
- `metadata["persona"]` holds the legacy persona UUID (`id`), `description`, `preferences`, the
  task statistics, `last_active_at` and the persona's own `metadata`.

The same module holds the other persona-era mappings (importance <-> learning_weight, tags,
context type) so the data migration, the import command, the v1 API and the persona MCP tools
all translate the same way. Nothing here touches the database except the lookups at the end.
"""
from __future__ import annotations

import math
import uuid
from datetime import datetime

from django.db import models

PERSONA_AGENT_TYPE = "persona"
PERSONA_METADATA_KEY = "persona"
LEGACY_NAMESPACE = "legacy"
MEMORY_LEGACY_KEY = "legacy"


class PersonaType(models.TextChoices):
    ATHENA = "athena", "Athena"
    ARTEMIS = "artemis", "Artemis"
    HESTIA = "hestia", "Hestia"
    BELLONA = "bellona", "Bellona"
    SESHAT = "seshat", "Seshat"


class PersonaRole(models.TextChoices):
    STRATEGIST = "strategist", "Strategist"
    OPTIMIZER = "optimizer", "Optimizer"
    AUDITOR = "auditor", "Auditor"
    COORDINATOR = "coordinator", "Coordinator"
    DOCUMENTER = "documenter", "Documenter"


# The role each persona type played in the persona-era service.
DEFAULT_ROLE_FOR_TYPE = {
    PersonaType.ATHENA: PersonaRole.STRATEGIST,
    PersonaType.ARTEMIS: PersonaRole.OPTIMIZER,
    PersonaType.HESTIA: PersonaRole.AUDITOR,
    PersonaType.BELLONA: PersonaRole.COORDINATOR,
    PersonaType.SESHAT: PersonaRole.DOCUMENTER,
}


# --- reading the persona-era records kept in metadata ----------------------------------------
# `metadata` is a JSON object anyone who may write the row may have written into: every value read
# from it is checked for its type here, and one that does not parse counts as absent. A hostile or
# stray value then changes what one row shows, never whether a v1 listing answers.

def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value) -> float | None:
    """A finite JSON number, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _count(value) -> int:
    """A non-negative JSON integer, or 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _list(value) -> list:
    return list(value) if isinstance(value, list) else []


def legacy_record(row) -> dict:
    """What the import recorded from the persona era on a memory, task or workflow (`metadata["legacy"]`)."""
    return _object(_object(row.metadata).get(MEMORY_LEGACY_KEY))


def persona_record(agent) -> dict:
    """The persona-era fields kept on an agent (`metadata["persona"]`)."""
    return _object(_object(agent.metadata).get(PERSONA_METADATA_KEY))


def recall_count(memory) -> int:
    return _count(legacy_record(memory).get("recall_count"))


# --- importance (0..1) <-> learning_weight (0..10) ----------------------------------------
# learning_weight = 0.5 + 1.5 * importance: an average old memory (0.5) lands at 1.25, just above
# the v2 default of 1.0; the most important (1.0) at 2.0, leaving room for feedback to raise it.
IMPORTANCE_BASE = 0.5
IMPORTANCE_SCALE = 1.5
DEFAULT_IMPORTANCE = 0.5


def importance_to_learning_weight(importance) -> float:
    """Scale a persona-era importance (0..1, None means the old default 0.5) into learning_weight."""
    if importance is None:
        importance = DEFAULT_IMPORTANCE
    importance = min(1.0, max(0.0, float(importance)))
    return round(IMPORTANCE_BASE + IMPORTANCE_SCALE * importance, 6)


def learning_weight_to_importance(weight) -> float:
    """The inverse of importance_to_learning_weight, clamped to 0..1."""
    if weight is None:
        return DEFAULT_IMPORTANCE
    return round(min(1.0, max(0.0, (float(weight) - IMPORTANCE_BASE) / IMPORTANCE_SCALE)), 6)


def memory_importance(memory) -> float:
    """The importance an old client sees: the imported value when unchanged, else derived from the weight."""
    imported = _number(legacy_record(memory).get("importance"))
    if imported is not None and 0.0 <= imported <= 1.0 and importance_to_learning_weight(imported) == round(
        memory.learning_weight, 6
    ):
        return imported
    return learning_weight_to_importance(memory.learning_weight)


# --- personas <-> agents --------------------------------------------------------------------

def isoformat(value) -> str | None:
    """A timestamp as persona-era clients read it: ISO 8601, None kept."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _capability_list(capabilities) -> list:
    """The persona-era `capabilities` list for any agent: stored verbatim for personas, else the enabled keys."""
    if isinstance(capabilities, list):
        return list(capabilities)
    if not isinstance(capabilities, dict):
        return []
    stored = capabilities.get("capabilities")
    if isinstance(stored, list):
        return list(stored)
    skipped = {"persona_type", "persona_role", "specialties", "capabilities"}
    return sorted(key for key, value in capabilities.items() if key not in skipped and value)


def agent_fields_from_persona(persona: dict) -> dict:
    """The Agent field values for a persona given as a dict of persona-era columns.

    Used by the data migration (historical models) and by the import command (raw source rows),
    so it takes plain values and returns plain values.
    """
    persona_type = persona.get("type") or None
    persona_role = persona.get("role") or (DEFAULT_ROLE_FOR_TYPE.get(persona_type) if persona_type else None)
    capabilities = {
        "persona_type": persona_type,
        "persona_role": persona_role and str(persona_role),
        "specialties": list(persona.get("specialties") or []),
        "capabilities": list(persona.get("capabilities") or []),
    }
    average = persona.get("average_response_time")
    persona_meta = {
        "id": str(persona["id"]) if persona.get("id") else None,
        "description": persona.get("description") or "",
        "preferences": dict(persona.get("preferences") or {}),
        "total_tasks": int(persona.get("total_tasks") or 0),
        "successful_tasks": int(persona.get("successful_tasks") or 0),
        "average_response_time": float(average) if average is not None else None,
        "last_active_at": isoformat(persona.get("last_active_at")),
        "metadata": dict(persona.get("metadata") or {}),
    }
    return {
        "agent_id": persona["name"],
        "display_name": persona.get("display_name") or persona["name"],
        "agent_type": PERSONA_AGENT_TYPE,
        "capabilities": capabilities,
        "configuration": dict(persona.get("config") or {}),
        "is_active": bool(persona.get("is_active", True)),
        "metadata": {PERSONA_METADATA_KEY: persona_meta},
    }


def persona_fields_from_agent(agent) -> dict:
    """The persona-era column values for an agent (the inverse of agent_fields_from_persona)."""
    capabilities = _object(agent.capabilities)
    persona_meta = persona_record(agent)
    last_active = getattr(agent, "last_activity", None) or _text(persona_meta.get("last_active_at"))
    return {
        "id": legacy_persona_id(agent) or str(agent.pk),
        "name": agent.agent_id,
        "type": _text(capabilities.get("persona_type")),
        "role": _text(capabilities.get("persona_role")),
        "display_name": agent.display_name or agent.agent_id,
        "description": _text(persona_meta.get("description")) or "",
        "specialties": _list(capabilities.get("specialties")),
        "capabilities": _capability_list(capabilities),
        "config": dict(_object(agent.configuration)),
        "preferences": dict(_object(persona_meta.get("preferences"))),
        "is_active": bool(agent.is_active),
        "total_tasks": _count(persona_meta.get("total_tasks")),
        "successful_tasks": _count(persona_meta.get("successful_tasks")),
        "average_response_time": _number(persona_meta.get("average_response_time")),
        "last_active_at": isoformat(last_active),
        "metadata": dict(_object(persona_meta.get("metadata"))),
    }


def persona_to_dict(agent) -> dict:
    """An agent in the persona-era response shape (what v1 clients and persona tools expect)."""
    data = persona_fields_from_agent(agent)
    data["created_at"] = isoformat(agent.created_at)
    data["updated_at"] = isoformat(agent.updated_at)
    return data


def legacy_persona_id(agent) -> str | None:
    """The persona-era UUID an imported or migrated agent came from, if any."""
    return _text(persona_record(agent).get("id")) or None


def agent_for_persona(name_or_id):
    """The agent a persona reference names: the persona name (== agent_id), its legacy UUID or the agent's UUID.

    A legacy UUID resolves only through what the import recorded (its PersonaLink records),
    never through metadata an agent or operator can edit (agents and whoever edits them write it).
    Raises core.errors.NotFound when nothing matches. Plugged into v2 tools as the extension point
    `persona_agent` (core.extensions).
    """
    from agents.models import Agent
    from core.errors import NotFound

    if isinstance(name_or_id, Agent):
        return name_or_id
    if not isinstance(name_or_id, (str, uuid.UUID)) or not str(name_or_id).strip():
        raise NotFound("Persona not found.")
    reference = str(name_or_id).strip()
    agents = Agent.objects.select_related("namespace", "user")
    agent = agents.filter(agent_id=reference).first()
    if agent is not None:
        return agent
    try:
        as_uuid = str(uuid.UUID(reference))
    except ValueError:
        # Persona names were case-insensitive in practice ("Athena" vs "athena").
        agent = agents.filter(agent_id__iexact=reference).order_by("agent_id").first()
        if agent is None:
            raise NotFound(f"Persona '{reference[:128]}' not found.") from None
        return agent
    agent = agents.filter(persona_link__persona_id=as_uuid).first()
    if agent is None:
        agent = agents.filter(pk=as_uuid).first()
    if agent is None:
        raise NotFound(f"Persona '{reference}' not found.")
    return agent
