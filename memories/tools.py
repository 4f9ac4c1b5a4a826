"""MCP tools for memories: store, search, read, change, share, and say whether a memory helped.

`update_memory` and `delete_memory` are also the persona-era tools of the same names: the update
tool accepts the old `importance`, `tags` and `context_type` parameters next to the v2 ones.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from agents.models import Agent
from core import extensions
from core.errors import InvalidInput
from core.tools import agent_tool, given, render_json

from . import contextual, learning, services
from . import search as memory_search
from .models import Memory

AccessLevelName = Literal["private", "shared", "public", "system"]
SearchMode = Literal["hybrid", "semantic", "keyword"]
MemoryId = Annotated[str, Field(description="The memory's UUID, as returned by store_memory or search_memories.")]
Tags = Annotated[list[str] | None, Field(max_length=50, description="Context tags (strings of 1-64 characters).")]


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
def store_memory(
    agent: Agent,
    content: Annotated[str, Field(description="The text to remember (not empty; at most 50,000 characters).")],
    access_level: Annotated[AccessLevelName, Field(description="Who may read it.")] = "private",
    namespace: Annotated[str | None, Field(description="Namespace slug; defaults to your home namespace.")] = None,
    context_tags: Tags = None,
    memory_category: Annotated[str | None, Field(description="Category, 1-64 characters; default 'general'.")] = None,
    learning_weight: Annotated[float | None, Field(ge=0, le=10, description="Importance weight 0-10 (default 1).")] = None,
    parent_memory_id: Annotated[str | None, Field(description="UUID of a memory this one refines or answers.")] = None,
    metadata: Annotated[dict[str, Any] | None, Field(description="Free JSON object.")] = None,
) -> dict[str, Any]:
    data = given(
        content=content, access_level=access_level, namespace=namespace, context_tags=context_tags,
        memory_category=memory_category, learning_weight=learning_weight, parent_memory_id=parent_memory_id,
        metadata=metadata,
    )
    return render_memory(services.create_memory(agent, data))


@agent_tool(
    title="Search memories",
    read_only=True,
    description="Find the memories you may read that best match a query. mode: hybrid (meaning and words, the "
    "default), semantic (meaning only) or keyword (words only). Filters narrow the candidates before ranking. "
    'Example: {"query": "who approves staging deploys?", "limit": 5, "namespace": "team-alpha"}.',
)
def search_memories(
    agent: Agent,
    query: Annotated[str, Field(description="What to look for, in natural language.")],
    limit: Annotated[int, Field(ge=1, le=100, description="Number of results, 1-100.")] = 10,
    mode: Annotated[SearchMode, Field(description="Ranking: hybrid, semantic or keyword.")] = "hybrid",
    namespace: Annotated[str | None, Field(description="Only memories in this namespace.")] = None,
    agent_id: Annotated[str | None, Field(description="Only memories owned by this agent.")] = None,
    access_levels: Annotated[list[AccessLevelName] | None, Field(description="Only these access levels.")] = None,
    context_tags: Annotated[list[str] | None, Field(description="Only memories carrying all of these tags.")] = None,
    memory_category: Annotated[str | None, Field(description="Only memories of this category.")] = None,
    min_similarity: Annotated[float | None, Field(ge=-1, le=1, description="Drop results less similar than this.")] = None,
) -> dict[str, Any]:
    request = memory_search.clean_request(given(
        query=query, limit=limit, mode=mode, namespace=namespace, agent_id=agent_id, access_levels=access_levels,
        context_tags=context_tags, memory_category=memory_category, min_similarity=min_similarity,
    ))
    return render_search(memory_search.search(agent, request))


class ConversationTurn(BaseModel):
    role: Annotated[str, Field(max_length=32, description="Who spoke: user, assistant, system or tool.")] = "user"
    content: Annotated[str, Field(max_length=10_000, description="What was said.")]


class TaskContext(BaseModel):
    title: Annotated[str | None, Field(description="The task's title.")] = None
    description: Annotated[str | None, Field(description="What the task is about.")] = None
    tags: Annotated[list[str] | None, Field(max_length=50, description="Memories with these tags rank higher.")] = None
    namespace: Annotated[str | None, Field(description="Memories in this namespace rank higher.")] = None
    task_type: Annotated[str | None, Field(description="The kind of task.")] = None
    memory_category: Annotated[str | None, Field(description="The category of memory wanted.")] = None


@agent_tool(
    title="Contextual search",
    read_only=True,
    description="Search like search_memories, but let the recent conversation and the current task shape the "
    "ranking: the query is blended with the last turns, and memories sharing the task's tags or namespace rank higher. "
    'Example: {"query": "what did we decide?", "conversation_context": [{"role": "user", "content": "About the EU '
    'rollout..."}], "task_context": {"title": "Plan the rollout", "tags": ["deploy"]}}.',
)
def contextual_search(
    agent: Agent,
    query: Annotated[str, Field(description="What to look for, in natural language.")],
    conversation_context: Annotated[list[ConversationTurn] | None,
                                    Field(max_length=20, description="Recent turns, oldest first.")] = None,
    task_context: Annotated[TaskContext | None, Field(description="The task at hand.")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="Number of results, 1-100.")] = 10,
    mode: Annotated[SearchMode, Field(description="Ranking: hybrid, semantic or keyword.")] = "hybrid",
    namespace: Annotated[str | None, Field(description="Only memories in this namespace.")] = None,
    agent_id: Annotated[str | None, Field(description="Only memories owned by this agent.")] = None,
    access_levels: Annotated[list[AccessLevelName] | None, Field(description="Only these access levels.")] = None,
    context_tags: Annotated[list[str] | None, Field(description="Only memories carrying all of these tags.")] = None,
    memory_category: Annotated[str | None, Field(description="Only memories of this category.")] = None,
    min_similarity: Annotated[float | None, Field(ge=-1, le=1, description="Drop results less similar than this.")] = None,
) -> dict[str, Any]:
    request, turns, task = contextual.clean_contextual_request(given(
        query=query, limit=limit, mode=mode, namespace=namespace, agent_id=agent_id, access_levels=access_levels,
        context_tags=context_tags, memory_category=memory_category, min_similarity=min_similarity,
        conversation_context=[turn.model_dump() for turn in conversation_context] if conversation_context else None,
        task_context=task_context.model_dump(exclude_none=True) if task_context else None,
    ))
    return render_search(contextual.contextual_search(agent, request, turns, task))


@agent_tool(
    title="Get a memory",
    read_only=True,
    description='Read one memory by id. A memory you may not read answers "not found". Example: {"memory_id": "<uuid>"}.',
)
def get_memory(agent: Agent, memory_id: MemoryId) -> dict[str, Any]:
    return render_memory(services.get_visible_memory(agent, memory_id))


@agent_tool(
    title="Update a memory",
    description="Change a memory you may write (yours; shared ones also as a namespace admin). Give only the fields to "
    "change; new content is re-embedded. Also accepts the persona-era parameters: importance (0-1, mapped to "
    "learning_weight), tags (= context_tags) and context_type (= memory_category). "
    'Example: {"memory_id": "<uuid>", "content": "Staging deploys need two approvals.", "context_tags": ["deploy"]}.',
)
def update_memory(
    agent: Agent,
    memory_id: MemoryId,
    content: Annotated[str | None, Field(description="New text.")] = None,
    access_level: Annotated[AccessLevelName | None, Field(description="New access level.")] = None,
    namespace: Annotated[str | None, Field(description="Move to this namespace (you must be a member).")] = None,
    context_tags: Tags = None,
    memory_category: Annotated[str | None, Field(description="New category.")] = None,
    learning_weight: Annotated[float | None, Field(ge=0, le=10, description="New weight 0-10.")] = None,
    metadata: Annotated[dict[str, Any] | None, Field(description="Replaces the metadata object.")] = None,
    importance: Annotated[float | None, Field(ge=0, le=1, description="Persona-era: importance 0-1.")] = None,
    tags: Annotated[list[str] | None, Field(description="Persona-era name of context_tags.")] = None,
    context_type: Annotated[str | None, Field(description="Persona-era name of memory_category.")] = None,
) -> dict[str, Any]:
    if importance is not None:
        if learning_weight is not None:
            raise InvalidInput("Give learning_weight or the persona-era importance, not both.", field="importance")
        learning_weight = extensions.call("importance_to_learning_weight", importance, field="importance")
    if tags is not None:
        if context_tags is not None:
            raise InvalidInput("Give context_tags or the persona-era tags, not both.", field="tags")
        context_tags = tags
    if context_type is not None:
        if memory_category is not None:
            raise InvalidInput("Give memory_category or the persona-era context_type, not both.", field="context_type")
        memory_category = context_type
    changes = given(
        content=content, access_level=access_level, namespace=namespace, context_tags=context_tags,
        memory_category=memory_category, learning_weight=learning_weight, metadata=metadata,
    )
    if not changes:
        raise InvalidInput("Nothing to change: give at least one field besides memory_id.")
    memory = services.get_visible_memory(agent, memory_id)
    return render_memory(services.update_memory(agent, memory, changes))


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
    agent_ids: Annotated[list[str], Field(min_length=1, max_length=100, description="The agents to share with.")],
    unshare: Annotated[bool, Field(description="Remove these agents' access instead of granting it.")] = False,
) -> dict[str, Any]:
    memory = services.get_visible_memory(agent, memory_id)
    if unshare:
        shared = services.unshare_memory(agent, memory, agent_ids)
    else:
        shared = services.share_memory(agent, memory, agent_ids)
    return {"id": str(memory.pk), "agent_ids": shared}


@agent_tool(
    title="Memory feedback",
    description="Say whether a memory you read was useful; it nudges the memory's learning_weight (and so its rank) "
    'up or down. Example: {"memory_id": "<uuid>", "useful": true}.',
)
def memory_feedback(
    agent: Agent,
    memory_id: MemoryId,
    useful: Annotated[bool, Field(description="true if the memory helped, false if it did not.")],
) -> dict[str, Any]:
    memory = services.get_visible_memory(agent, memory_id)
    return render_memory(services.record_feedback(agent, memory, useful))


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
def categorise_memories(
    agent: Agent,
    apply: Annotated[bool, Field(description="Store the proposed categories (false: only propose).")] = False,
) -> dict[str, Any]:
    return render_json(learning.categorise(agent, apply=apply))
