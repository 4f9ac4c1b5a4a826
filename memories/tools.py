"""MCP tools for memories: store, search, read, change, share, and say whether a memory helped.

`update_memory` and `delete_memory` are also the persona-era tools of the same names: the update
tool accepts the old `importance`, `tags` and `context_type` parameters next to the v2 ones.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from agents.models import Agent
from core import extensions
from core.errors import InvalidInput
from core.tools import agent_tool, render_json

from . import consolidation, contextual, learning, patterns, services, usage
from . import search as memory_search
from .choices import UsageKind
from .contracts import (
    Categorise,
    ContextualSearch,
    Feedback,
    MergeMemories,
    PersonaEraChanges,
    RestoreVersion,
    SearchMemories,
    ShareMemory,
    StoreMemory,
    UpdateMemories,
    UpdateMemory,
)
from .models import Memory

MemoryId = Annotated[str, Field(description="The memory's UUID, as returned by store_memory or search_memories.")]


def render_memory(memory: Memory) -> dict:
    """A memory in the REST API's shape (GET /api/v2/memories/{id})."""
    from .api.serializers import MemorySerializer

    return render_json(MemorySerializer(memory).data)


def render_search(result: memory_search.SearchResult) -> dict:
    """A search result in the shape of POST /api/v2/memories/search."""
    from .api.serializers import search_response

    return render_json(search_response(result))


@agent_tool(
    title="Store a memory",
    description="Store a memory owned by you. Its embedding is computed in the background, so it is searchable by "
    "meaning a moment later (by keyword at once). access_level: private (only you), shared (members of the namespace "
    "and its sub-namespaces, plus agents you share it with), public (every agent), system (admin agents only). "
    'Example: {"content": "Staging deploys need the team lead\'s approval.", "access_level": "shared", '
    '"namespace": "team-alpha", "context_tags": ["deploy"]}.',
)
def store_memory(agent: Agent, data: StoreMemory) -> dict[str, Any]:
    return render_memory(services.create_memory(agent, data))


@agent_tool(
    title="Search memories",
    read_only=True,
    description="Find the memories you may read that best match a query. mode: hybrid (meaning and words, the "
    "default), semantic (meaning only) or keyword (words only). Filters narrow the candidates before ranking. "
    'Example: {"query": "who approves staging deploys?", "limit": 5, "namespace": "team-alpha"}.',
)
def search_memories(agent: Agent, data: SearchMemories) -> dict[str, Any]:
    return render_search(memory_search.search(agent, memory_search.search_request(data)))


@agent_tool(
    title="Contextual search",
    read_only=True,
    description="Search like search_memories, but let the recent conversation and the current task shape the "
    "ranking: the query is blended with the last turns, and memories sharing the task's tags or namespace rank higher. "
    'Example: {"query": "what did we decide?", "conversation_context": [{"role": "user", "content": "About the EU '
    'rollout..."}], "task_context": {"title": "Plan the rollout", "tags": ["deploy"]}}.',
)
def contextual_search(agent: Agent, data: ContextualSearch) -> dict[str, Any]:
    return render_search(contextual.contextual_search(agent, *contextual.contextual_request(data)))


@agent_tool(
    title="Get a memory",
    read_only=True,
    description='Read one memory by id. A memory you may not read answers "not found". Example: {"memory_id": "<uuid>"}.',
)
def get_memory(agent: Agent, memory_id: MemoryId) -> dict[str, Any]:
    memory = services.get_visible_memory(agent, memory_id)
    usage.track_use(agent, UsageKind.READ, [memory.pk])
    return render_memory(memory)


@agent_tool(
    title="Update a memory",
    description="Change a memory you may write (yours; shared ones also as a namespace admin). Give only the fields to "
    "change; new content is re-embedded. Also accepts the persona-era parameters: importance (0-1, mapped to "
    "learning_weight), tags (= context_tags) and context_type (= memory_category). "
    'Example: {"memory_id": "<uuid>", "content": "Staging deploys need two approvals.", "context_tags": ["deploy"]}.',
)
def update_memory(agent: Agent, memory_id: MemoryId, changes: UpdateMemory, persona_era: PersonaEraChanges
                  ) -> dict[str, Any]:
    changes = persona_era.merged_into(changes, lambda importance: extensions.call(
        "importance_to_learning_weight", importance, field="importance"))
    if not changes.given():
        raise InvalidInput("Nothing to change: give at least one field besides memory_id.")
    memory = services.get_visible_memory(agent, memory_id)
    return render_memory(services.update_memory(agent, memory, changes))


@agent_tool(
    title="Memory history",
    read_only=True,
    description="The versions of a memory, newest first: every change of its content, access level, namespace, "
    "category, tags or weight, with who made it and when. You see the versions you could read while they were "
    'current (a private past stays its owner\'s). Example: {"memory_id": "<uuid>"}.',
)
def memory_history(
    agent: Agent,
    memory_id: MemoryId,
    limit: Annotated[int, Field(ge=1, le=100, description="Newest versions to list, 1-100.")] = 20,
) -> dict[str, Any]:
    from .api.serializers import MemoryVersionSerializer

    memory = services.get_visible_memory(agent, memory_id, current=False)
    versions = list(services.memory_history(agent, memory)[:limit])
    return {"id": str(memory_id), "count": len(versions),
            "versions": render_json(MemoryVersionSerializer(versions, many=True, context={"viewer": agent}).data)}


@agent_tool(
    title="Restore a memory version",
    description="Make an earlier version of a memory you may change current again; it becomes a new version, so the "
    'restore can itself be undone. Example: {"memory_id": "<uuid>", "version": 2}.',
)
def restore_memory(agent: Agent, memory_id: MemoryId, data: RestoreVersion) -> dict[str, Any]:
    memory = services.get_visible_memory(agent, memory_id, current=False)
    return render_memory(services.restore_memory(agent, memory, data))


@agent_tool(
    title="Why can I read this memory",
    description="Why you may read a memory (owner; member of its namespace or of one below it; shared with you, by "
    "whom; public; system) and, for your own memories, which agents may read it and why. Example: "
    '{"memory_id": "<uuid>"}.',
)
def memory_access(agent: Agent, memory_id: MemoryId) -> dict[str, Any]:
    return render_json(services.explain_access(agent, services.get_visible_memory(agent, memory_id)))


@agent_tool(
    title="Merge memories",
    description="Fold a group of memories you may change (the near_duplicates of memory_insights, say) into one new "
    "memory: the union of their tags and shares, the widest access you may grant, their ids in metadata.merge. The "
    "originals are retired (no read returns them) and restore_memory brings one back. Without content, the merged "
    'text is the distinct texts in the order given. Example: {"memory_ids": ["<uuid>", "<uuid>"], '
    '"content": "The launch is in June."}.',
)
def merge_memories(agent: Agent, data: MergeMemories) -> dict[str, Any]:
    return render_memory(consolidation.merge_memories(agent, data))


@agent_tool(
    title="Delete a memory",
    destructive=True,
    description='Delete a memory you may write. Same tool as the persona-era delete_memory. Example: {"memory_id": "<uuid>"}.',
)
def delete_memory(agent: Agent, memory_id: MemoryId) -> dict[str, Any]:
    memory = services.get_visible_memory(agent, memory_id)
    services.delete_memory(agent, memory)
    return {"deleted": True, "id": str(memory_id)}


@agent_tool(
    title="Share a memory",
    description="Let named agents read one of your shared memories (or stop, with unshare=true). Only memories with "
    'access_level "shared" can be shared. Example: {"memory_id": "<uuid>", "agent_ids": ["research-bot"]}.',
)
def share_memory(
    agent: Agent,
    memory_id: MemoryId,
    data: ShareMemory,
    unshare: Annotated[bool, Field(description="Remove these agents' access instead of granting it.")] = False,
) -> dict[str, Any]:
    memory = services.get_visible_memory(agent, memory_id)
    if unshare:
        shared = services.unshare_memory(agent, memory, data)
    else:
        shared = services.share_memory(agent, memory, data)
    return {"id": str(memory.pk), "agent_ids": shared}


@agent_tool(
    title="Memory feedback",
    description="Say whether a memory you read was useful; it nudges the memory's learning_weight (and so its rank) "
    'up or down. Example: {"memory_id": "<uuid>", "useful": true}.',
)
def memory_feedback(agent: Agent, memory_id: MemoryId, data: Feedback) -> dict[str, Any]:
    memory = services.get_visible_memory(agent, memory_id)
    return render_memory(services.record_feedback(agent, memory, data))


@agent_tool(
    title="Memory insights",
    read_only=True,
    description="How your memories are used: counts by category, access level and embedding status, search hits, "
    "memories no search returned for 30 days, categories proposed for memories still in 'general', groups of "
    "memories worded almost alike (repeats, or a fact that changed), and concrete suggestions (weights to change, "
    "memories to review, categories to apply). No arguments.",
)
def memory_insights(agent: Agent) -> dict[str, Any]:
    return render_json(learning.insights(agent))


@agent_tool(
    title="Categorise memories",
    description="File your memories still in the default category 'general' under the category most of their "
    "nearest categorised memories (yours) carry. Proposes only, unless apply is true. "
    'Example: {"apply": true}.',
)
def categorise_memories(agent: Agent, data: Categorise) -> dict[str, Any]:
    subject = learning.subject(agent, data.agent_id)
    return render_json(learning.categorise(subject, apply=data.apply, actor=agent))


@agent_tool(
    title="Update memories in bulk",
    description="Set the memory_category, learning_weight or expiry (expires_at or ttl_seconds) of many memories you "
    "may change, in one call, all or nothing. The suggestions of memory_insights name the call that applies them. "
    'Example: {"memory_ids": ["<uuid>", "<uuid>"], "learning_weight": 0.5}.',
)
def bulk_update_memories(agent: Agent, data: UpdateMemories) -> dict[str, Any]:
    memories = services.bulk_update_memories(agent, data)
    return {"count": len(memories), "ids": [str(m.pk) for m in memories]}


@agent_tool(
    title="Memory patterns",
    read_only=True,
    description="What the nightly pattern job learned about your memories and searches: topics (clusters labelled by "
    "their most distinctive words), memories often returned together, the categories your searches find, your active "
    "hours (UTC), stale memories, memories returned but never used, and private memories other members keep looking "
    "for. Admin agents may name another agent (agent_id). Example: {}.",
)
def memory_patterns(
    agent: Agent,
    agent_id: Annotated[str | None, Field(max_length=200, description="Admin agents: the agent to read (default: "
                                          "yourself).")] = None,
) -> dict[str, Any]:
    from .api.serializers import PatternSerializer

    subject = learning.named_subject(agent, agent_id) if agent_id else agent
    return render_json(PatternSerializer(patterns.pattern_for(agent, subject)).data)
