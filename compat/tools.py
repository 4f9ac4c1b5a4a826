"""Persona-era MCP tools (deprecated), kept so clients of the old persona service keep working.

A persona is an agent: the persona name is the `agent_id`; its type, role, specialties and
capability list live in the agent's capabilities (see `compat.adapter`). The persona-era memory
fields map onto v2 ones: `importance` (0-1) <-> `learning_weight`, `tags` <-> `context_tags`,
`context_type` <-> `memory_category`. Every tool acts as the calling agent and sees exactly what
the v2 tools would show it.

Tools whose names the v2 API reuses live with the v2 tools and accept both parameter sets:
`update_memory` and `delete_memory` (memories.tools), `create_task`, `assign_task`,
`update_task_status`, `list_tasks` and `complete_task` (workflows.tools).
"""
from __future__ import annotations

from typing import Any

from django.db.models import Q

from agents.models import Agent
from core.tools import agent_tool, render_json
from memories import search as memory_search
from memories import services as memory_services
from memories.models import Memory

from . import adapter, selectors
from .contracts import CreatePersonaMemory, FindPersonas, ListPersonas, PersonaFilter, PersonaLookup, RecallMemory

DEPRECATED = "Deprecated persona-era tool; prefer {replacement}. "


def _persona_agent_id(reference: str | None) -> str | None:
    return adapter.agent_for_persona(reference).agent_id if reference else None


def render_persona_memory(memory: Memory, similarity: float | None = None) -> dict:
    """A memory in the persona-era shape, with the v2 access fields alongside."""
    data = {
        "id": str(memory.pk),
        "content": memory.content,
        "persona_id": memory.agent.agent_id if memory.agent_id else None,
        "importance": adapter.memory_importance(memory),
        "tags": list(memory.context_tags or []),
        "context_type": memory.memory_category,
        "metadata": memory.metadata or {},
        "access_count": memory.access_count,
        "accessed_at": memory.last_accessed_at,
        "has_embedding": memory.embedding_status == "ready",
        "access_level": memory.access_level,
        "namespace": memory.namespace.namespace,
        "created_at": memory.created_at,
        "updated_at": memory.updated_at,
    }
    if similarity is not None:
        data["similarity"] = similarity
    return render_json(data)


@agent_tool(
    title="Create memory (persona-era)",
    description=DEPRECATED.format(replacement="store_memory")
    + "Stores a memory as you. persona_id, when given, must name you. Defaults to access_level 'shared' in your home "
    "namespace, as persona-era memories were visible to every persona. "
    'Example: {"content": "Use blue-green deploys.", "importance": 0.8, "tags": ["deploy"], "context_type": "decision"}.',
)
def create_memory(agent: Agent, data: CreatePersonaMemory) -> dict[str, Any]:
    memory = memory_services.create_memory(agent, data.store(_persona_agent_id(data.persona_id)))
    return render_persona_memory(memory)


@agent_tool(
    title="Recall memories (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="search_memories")
    + "Finds the memories you may read that match a query, optionally only one persona's. "
    'Example: {"query": "deployment strategy", "persona_id": "athena", "limit": 5}.',
)
def recall_memory(agent: Agent, data: RecallMemory) -> dict[str, Any]:
    request = memory_search.search_request(data.search(_persona_agent_id(data.persona_id)))
    hits = memory_search.search(agent, request).hits
    memories = data.important_enough([render_persona_memory(hit.memory, hit.similarity) for hit in hits])
    return {"memories": memories, "count": len(memories), "query": data.query}


@agent_tool(
    title="Memory statistics (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="search_memories with filters")
    + "Counts the memories you may read: in total, by persona, by context_type and by access level. "
    'Example: {"persona_id": "athena"}.',
)
def get_memory_stats(agent: Agent, data: PersonaFilter) -> dict[str, Any]:
    return selectors.memory_stats(agent, adapter.agent_for_persona(data.persona_id) if data.persona_id else None)


@agent_tool(
    title="List personas (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="list_agents")
    + "Lists agents in the persona-era shape (name = agent_id). "
    'Example: {"persona_type": "athena"}.',
)
def list_personas(agent: Agent, data: ListPersonas) -> dict[str, Any]:
    agents = Agent.objects.visible_to(agent).order_by("agent_id")
    if data.active_only:
        agents = agents.filter(is_active=True)
    if data.persona_type:
        agents = agents.filter(capabilities__persona_type=data.persona_type)
    if data.personas_only:
        agents = agents.filter(agent_type=adapter.PERSONA_AGENT_TYPE)
    personas = [render_json(adapter.persona_to_dict(a)) for a in agents]
    return {"personas": personas, "count": len(personas)}


@agent_tool(
    title="Get persona (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="list_agents or whoami")
    + 'One persona by name or persona-era UUID. Example: {"persona_id": "athena"}.',
)
def get_persona(agent: Agent, data: PersonaLookup) -> dict[str, Any]:
    return render_json(adapter.persona_to_dict(adapter.agent_for_persona(data.persona_id)))


@agent_tool(
    title="Persona capabilities (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="list_agents")
    + 'The capabilities, specialties, type and role of a persona. Example: {"persona_id": "artemis"}.',
)
def get_persona_capabilities(agent: Agent, data: PersonaLookup) -> dict[str, Any]:
    persona = adapter.persona_to_dict(adapter.agent_for_persona(data.persona_id))
    return render_json({key: persona[key] for key in ("name", "type", "role", "capabilities", "specialties")})


@agent_tool(
    title="Find personas by capability (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement='list_agents with "capability"')
    + "Personas whose capability list or specialties contain the capability (or whose v2 capabilities object has "
    'it as a key). Example: {"capability": "security_audit"}.',
)
def find_personas_by_capability(agent: Agent, data: FindPersonas) -> dict[str, Any]:
    capability = data.capability
    agents = Agent.objects.visible_to(agent).filter(
        Q(capabilities__has_key=capability)
        | Q(capabilities__capabilities__contains=[capability])
        | Q(capabilities__specialties__contains=[capability])
    ).order_by("agent_id")
    if data.active_only:
        agents = agents.filter(is_active=True)
    personas = [render_json(adapter.persona_to_dict(a)) for a in agents]
    return {"personas": personas, "count": len(personas), "capability": capability}
