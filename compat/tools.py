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

from typing import Annotated, Any, Literal

from django.db.models import Q
from pydantic import Field

from agents.models import Agent
from core.tools import agent_tool, given, render_json
from memories import search as memory_search
from memories import services as memory_services
from memories.contracts import StoreMemory
from memories.models import Memory

from . import adapter, selectors

DEPRECATED = "Deprecated persona-era tool; prefer {replacement}. "
PersonaRef = Annotated[str, Field(description="Persona name (the agent_id, e.g. 'athena') or its persona-era UUID.")]


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
def create_memory(
    agent: Agent,
    content: Annotated[str, Field(description="The text to remember.")],
    persona_id: Annotated[str | None, Field(description="Owning persona; must be you (optional).")] = None,
    importance: Annotated[float, Field(ge=0, le=1, description="Importance 0-1 (mapped to learning_weight).")] = 0.5,
    tags: Annotated[list[str] | None, Field(max_length=50, description="Tags (= context_tags).")] = None,
    context_type: Annotated[str, Field(description="Kind of memory (= memory_category).")] = "general",
    metadata: Annotated[dict[str, Any] | None, Field(description="Free JSON object.")] = None,
    access_level: Annotated[Literal["private", "shared", "public"], Field(description="Who may read it.")] = "shared",
    namespace: Annotated[str | None, Field(description="Namespace slug; defaults to your home namespace.")] = None,
) -> dict[str, Any]:
    owner = adapter.agent_for_persona(persona_id).agent_id if persona_id else None
    memory = memory_services.create_memory(agent, StoreMemory.parse(given(
        content=content,
        access_level=access_level,
        namespace=namespace,
        context_tags=tags,
        memory_category=context_type,
        learning_weight=adapter.importance_to_learning_weight(importance),
        metadata=metadata,
        agent_id=owner,
    )))
    return render_persona_memory(memory)


@agent_tool(
    title="Recall memories (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="search_memories")
    + "Finds the memories you may read that match a query, optionally only one persona's. "
    'Example: {"query": "deployment strategy", "persona_id": "athena", "limit": 5}.',
)
def recall_memory(
    agent: Agent,
    query: Annotated[str, Field(description="What to look for.")],
    persona_id: Annotated[str | None, Field(description="Only memories owned by this persona.")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="Number of results.")] = 10,
    tags: Annotated[list[str] | None, Field(description="Only memories carrying all of these tags.")] = None,
    context_type: Annotated[str | None, Field(description="Only memories of this kind.")] = None,
    min_importance: Annotated[float | None, Field(ge=0, le=1, description="Drop memories less important than this.")] = None,
    min_similarity: Annotated[float | None, Field(ge=-1, le=1, description="Drop less similar results.")] = None,
    semantic: Annotated[bool, Field(description="true: rank by meaning only; false: meaning and words.")] = False,
) -> dict[str, Any]:
    request = memory_search.clean_request(given(
        query=query,
        limit=limit,
        mode="semantic" if semantic else "hybrid",
        agent_id=adapter.agent_for_persona(persona_id).agent_id if persona_id else None,
        context_tags=tags,
        memory_category=context_type,
        min_similarity=min_similarity,
    ))
    hits = memory_search.search(agent, request).hits
    memories = [render_persona_memory(hit.memory, hit.similarity) for hit in hits]
    if min_importance is not None:
        memories = [m for m in memories if m["importance"] >= min_importance]
    return {"memories": memories, "count": len(memories), "query": query}


@agent_tool(
    title="Memory statistics (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="search_memories with filters")
    + "Counts the memories you may read: in total, by persona, by context_type and by access level. "
    'Example: {"persona_id": "athena"}.',
)
def get_memory_stats(
    agent: Agent,
    persona_id: Annotated[str | None, Field(description="Only this persona's memories.")] = None,
) -> dict[str, Any]:
    return selectors.memory_stats(agent, adapter.agent_for_persona(persona_id) if persona_id else None)


@agent_tool(
    title="List personas (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="list_agents")
    + "Lists agents in the persona-era shape (name = agent_id). "
    'Example: {"persona_type": "athena"}.',
)
def list_personas(
    agent: Agent,
    active_only: Annotated[bool, Field(description="Leave out inactive personas.")] = True,
    persona_type: Annotated[str | None, Field(description="Only this persona type (athena, artemis, ...).")] = None,
    personas_only: Annotated[bool, Field(description="Only agents migrated from personas (agent_type 'persona').")] = False,
) -> dict[str, Any]:
    agents = Agent.objects.visible_to(agent).order_by("agent_id")
    if active_only:
        agents = agents.filter(is_active=True)
    if persona_type:
        agents = agents.filter(capabilities__persona_type=persona_type)
    if personas_only:
        agents = agents.filter(agent_type=adapter.PERSONA_AGENT_TYPE)
    personas = [render_json(adapter.persona_to_dict(a)) for a in agents]
    return {"personas": personas, "count": len(personas)}


@agent_tool(
    title="Get persona (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="list_agents or whoami")
    + 'One persona by name or persona-era UUID. Example: {"persona_id": "athena"}.',
)
def get_persona(agent: Agent, persona_id: PersonaRef) -> dict[str, Any]:
    return render_json(adapter.persona_to_dict(adapter.agent_for_persona(persona_id)))


@agent_tool(
    title="Persona capabilities (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement="list_agents")
    + 'The capabilities, specialties, type and role of a persona. Example: {"persona_id": "artemis"}.',
)
def get_persona_capabilities(agent: Agent, persona_id: PersonaRef) -> dict[str, Any]:
    persona = adapter.persona_to_dict(adapter.agent_for_persona(persona_id))
    return render_json({key: persona[key] for key in ("name", "type", "role", "capabilities", "specialties")})


@agent_tool(
    title="Find personas by capability (persona-era)",
    read_only=True,
    description=DEPRECATED.format(replacement='list_agents with "capability"')
    + "Personas whose capability list or specialties contain the capability (or whose v2 capabilities object has "
    'it as a key). Example: {"capability": "security_audit"}.',
)
def find_personas_by_capability(
    agent: Agent,
    capability: Annotated[str, Field(min_length=1, max_length=128, description="The capability to look for.")],
    active_only: Annotated[bool, Field(description="Leave out inactive personas.")] = True,
) -> dict[str, Any]:
    agents = Agent.objects.visible_to(agent).filter(
        Q(capabilities__has_key=capability)
        | Q(capabilities__capabilities__contains=[capability])
        | Q(capabilities__specialties__contains=[capability])
    ).order_by("agent_id")
    if active_only:
        agents = agents.filter(is_active=True)
    personas = [render_json(adapter.persona_to_dict(a)) for a in agents]
    return {"personas": personas, "count": len(personas), "capability": capability}
