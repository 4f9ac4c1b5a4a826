"""State changes on memories. Every write checks access first and changes nothing on refusal."""
from __future__ import annotations

import unicodedata

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest, Least
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

import access
from agents.models import Agent
from agents.services import get_agent
from core import validation
from core.db import as_service
from core.errors import Forbidden, InvalidInput
from core.models import find_visible
from namespaces.services import get_namespace

from .choices import AccessLevel, EmbeddingStatus
from .models import Memory
from .tasks import enqueue_embedding

MAX_CATEGORY_LENGTH = 64
MAX_METADATA_DEPTH = 8
MAX_NAMESPACE_LENGTH = 128
LEARNING_WEIGHT_RANGE = (0.0, 10.0)


# --- Validation of single values (used by serializers and MCP tools alike) -----------------

def clean_content(content) -> str:
    if not isinstance(content, str):
        raise InvalidInput("content must be a string.", field="content")
    if not any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in content):
        raise InvalidInput("content may not be empty.", field="content")
    validation.storable(content, "content")
    limit = settings.TMWS_MAX_CONTENT_LENGTH
    if len(content) > limit:
        raise InvalidInput(f"content is {len(content)} characters; the limit is {limit}.", field="content")
    return content


def clean_access_level(value) -> str:
    return validation.choice(value, AccessLevel.values, "access_level")


def clean_tags(tags) -> list[str]:
    return validation.tags(tags, "context_tags")


def clean_category(value) -> str:
    if value is None:
        return "general"
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CATEGORY_LENGTH or not validation.is_storable(value):
        raise InvalidInput(f"memory_category must be 1-{MAX_CATEGORY_LENGTH} characters.", field="memory_category")
    return value.strip()


def clean_learning_weight(value) -> float:
    if value is None:
        return 1.0
    low, high = LEARNING_WEIGHT_RANGE
    return validation.number(value, "learning_weight", low, high)


def clean_metadata(value) -> dict:
    return validation.json_object(value, "metadata", max_depth=MAX_METADATA_DEPTH)


def clean_owned_metadata(actor, value, stored: dict | None = None, kind: str = "memory") -> dict:
    """Metadata of a memory (or task, workflow) as given, except that agents never write what the import records."""
    metadata, refused = access.reserved_metadata(actor, kind, stored, clean_metadata(value))
    if refused:
        raise Forbidden(
            f"metadata.{refused} is recorded by the persona-era import and is read-only for agents.",
            field=f"metadata.{refused}", code="reserved_metadata",
        )
    return metadata


# --- Lookups -------------------------------------------------------------------------------

def get_visible_memory(actor, memory_id) -> Memory:
    """A memory the actor may read, or NotFound (hidden and missing look the same)."""
    return find_visible(Memory.objects.visible_to(actor).for_display(), memory_id, "Memory")


def _owner_for(actor, agent_id, access_level: str) -> Agent | None:
    """The owning agent: the calling agent itself, or one that the operator naming it manages."""
    principal = access.Principal.of(actor)
    if principal.agent is not None:
        if agent_id not in (None, "", principal.agent.agent_id):
            raise Forbidden("Agents store memories only as themselves.", field="agent_id")
        return principal.agent
    if agent_id in (None, ""):
        if access_level == AccessLevel.SYSTEM:
            return None
        raise InvalidInput("agent_id is required when an operator stores a non-system memory.", field="agent_id")
    agent = get_agent(agent_id)
    if not access.can_store_for(principal, agent):
        raise Forbidden(f"No right to store memories in the name of agent '{agent.agent_id}'.", field="agent_id")
    return agent


def _build_memory(actor, data: dict, namespaces: dict | None = None, decisions: dict | None = None) -> Memory:
    """An unsaved, validated memory; `namespaces` and `decisions` are look-ups shared by a bulk call."""
    content = clean_content(data.get("content"))
    access_level = clean_access_level(data.get("access_level", AccessLevel.PRIVATE))
    principal = access.Principal.of(actor)
    slug = validation.optional_text(data.get("namespace"), "namespace", max_length=MAX_NAMESPACE_LENGTH)
    if slug is None and principal.agent is not None:
        namespace = principal.agent.namespace
    else:
        namespace = (namespaces or {}).get(slug) or get_namespace(slug)
    decisions = {} if decisions is None else decisions
    key = (namespace.pk, access_level)
    if key not in decisions:
        decisions[key] = access.can_create_memory(actor, namespace, access_level)
    allowed, reason = decisions[key]
    if not allowed:
        raise Forbidden(reason, field="access_level" if access_level == AccessLevel.SYSTEM else "namespace")
    owner = _owner_for(actor, data.get("agent_id"), access_level)
    parent = None
    if data.get("parent_memory_id") not in (None, ""):
        parent_id = validation.uuid_value(data["parent_memory_id"], "parent_memory_id")
        parent = Memory.objects.visible_to(actor).filter(pk=parent_id).first()
        if parent is None:
            raise InvalidInput("parent_memory_id names no memory you can see.", field="parent_memory_id")
    return Memory(
        content=content,
        access_level=access_level,
        namespace=namespace,
        agent=owner,
        context_tags=clean_tags(data.get("context_tags")),
        memory_category=clean_category(data.get("memory_category")),
        learning_weight=clean_learning_weight(data.get("learning_weight")),
        parent_memory=parent,
        metadata=clean_owned_metadata(actor, data.get("metadata")),
        embedding_status=EmbeddingStatus.PENDING,
    )


@transaction.atomic
def create_memory(actor, data: dict) -> Memory:
    """Store one memory; its embedding is computed in the background after commit."""
    memory = _build_memory(actor, data)
    memory.save()
    memory.has_no_usage_yet()
    enqueue_embedding([memory.pk])
    return memory


@transaction.atomic
def bulk_create_memories(actor, items: list[dict]) -> list[Memory]:
    """Store up to TMWS_MAX_BULK_MEMORIES memories, all or nothing: one bad item rejects the lot."""
    if not isinstance(items, list) or not items:
        raise InvalidInput("memories must be a non-empty list.", field="memories")
    limit = settings.TMWS_MAX_BULK_MEMORIES
    if len(items) > limit:
        raise InvalidInput(f"At most {limit} memories per bulk call.", field="memories")
    # Only string slugs are looked up here; any other value is refused item by item below.
    slugs = {item.get("namespace") for item in items if isinstance(item, dict) and isinstance(item.get("namespace"), str)}
    from namespaces.models import Namespace

    namespaces = {ns.namespace: ns for ns in Namespace.objects.filter(namespace__in=[s for s in slugs if s])}
    built, decisions = [], {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput(f"memories[{index}] must be an object.", field=f"memories[{index}]")
        try:
            built.append(_build_memory(actor, item, namespaces, decisions))
        except (InvalidInput, Forbidden) as exc:
            field = f"memories[{index}].{exc.field}" if exc.field else f"memories[{index}]"
            raise type(exc)(f"memories[{index}]: {exc.message}", field=field, code=exc.code) from exc
    Memory.objects.bulk_create(built, batch_size=500)
    enqueue_embedding([m.pk for m in built])
    return built


UPDATABLE_FIELDS = {"content", "access_level", "context_tags", "memory_category", "learning_weight", "metadata", "namespace"}


@transaction.atomic
def update_memory(actor, memory: Memory, changes: dict) -> Memory:
    """Change a memory the actor may write; new content resets the embedding to pending."""
    if not access.can(actor, access.Action.CHANGE, memory):
        raise Forbidden("You may read this memory but not change it.")
    unknown = sorted(set(changes) - UPDATABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"{unknown[0]} cannot be changed.", field=unknown[0])
    fields = {"updated_at"}
    if "content" in changes:
        content = clean_content(changes["content"])
        if content != memory.content:
            memory.content = content
            memory.embedding = None
            memory.embedding_model = ""
            memory.embedding_status = EmbeddingStatus.PENDING
            memory.embedding_error = ""
            memory.embedding_attempts = 0
            fields |= {"content", "embedding", "embedding_model", "embedding_status", "embedding_error",
                       "embedding_attempts"}
    if "access_level" in changes or "namespace" in changes:
        level = clean_access_level(changes.get("access_level", memory.access_level))
        namespace = get_namespace(changes["namespace"]) if "namespace" in changes else memory.namespace
        moving = level != memory.access_level or namespace.pk != memory.namespace_id
        if moving and not access.can(actor, access.Action.RECLASSIFY, memory):
            raise Forbidden("Only the owner may change a memory's access level or namespace.")
        allowed, reason = access.can_create_memory(actor, namespace, level)
        if not allowed or (memory.access_level == AccessLevel.SYSTEM and level != AccessLevel.SYSTEM
                           and memory.agent_id is None):
            raise Forbidden(reason or "A system memory without an owner must stay a system memory.")
        memory.access_level, memory.namespace = level, namespace
        fields |= {"access_level", "namespace"}
    if "context_tags" in changes:
        memory.context_tags = clean_tags(changes["context_tags"])
        fields.add("context_tags")
    if "memory_category" in changes:
        memory.memory_category = clean_category(changes["memory_category"])
        fields.add("memory_category")
    if "learning_weight" in changes:
        memory.learning_weight = clean_learning_weight(changes["learning_weight"])
        fields.add("learning_weight")
    if "metadata" in changes:
        memory.metadata = clean_owned_metadata(actor, changes["metadata"], memory.metadata)
        fields.add("metadata")
    memory.save(update_fields=sorted(fields))
    if "embedding_status" in fields:
        enqueue_embedding([memory.pk])
    return memory


@transaction.atomic
def re_embed_memories(ids) -> int:
    """Compute the embeddings of these memories again (in the background); returns how many were queued.

    The current embedding stays searchable until the new one replaces it.
    """
    ids = list(ids)
    queued = Memory.objects.filter(pk__in=ids).update(
        embedding_status=EmbeddingStatus.PENDING, embedding_error="", embedding_attempts=0, updated_at=timezone.now()
    )
    enqueue_embedding(ids)
    return queued


@transaction.atomic
def delete_memory(actor, memory: Memory) -> None:
    if not access.can(actor, access.Action.DELETE, memory):
        raise Forbidden("You may read this memory but not delete it.")
    memory.delete()


def _agents_named(agent_ids) -> list[Agent]:
    if not isinstance(agent_ids, list) or not agent_ids or not all(isinstance(a, str) for a in agent_ids):
        raise InvalidInput("agent_ids must be a non-empty list of agent ids.", field="agent_ids")
    if len(agent_ids) > 100:
        raise InvalidInput("Share with at most 100 agents per call.", field="agent_ids")
    agents = list(Agent.objects.select_related("user").filter(agent_id__in=agent_ids))
    missing = sorted(set(agent_ids) - {a.agent_id for a in agents})
    if missing:
        raise InvalidInput(f"Unknown agent '{missing[0][:128]}'.", field="agent_ids")
    return agents


@transaction.atomic
@as_service  # share grants are written by the service, never by the agent role
def share_memory(actor, memory: Memory, agent_ids) -> list[str]:
    """Let named agents read a shared memory (owner or namespace admin only)."""
    if not access.can(actor, access.Action.SHARE, memory):
        raise Forbidden("Only the owner or an admin of the memory's namespace may share it.")
    if memory.access_level != AccessLevel.SHARED:
        raise InvalidInput("Only memories with access_level 'shared' can be shared with agents.", field="access_level")
    agents = _agents_named(agent_ids)
    for agent in agents:
        assign_perm(access.SHARE_PERMISSION, agent.user, memory)
    return shared_agent_ids(memory)


@transaction.atomic
@as_service  # share grants are written by the service, never by the agent role
def unshare_memory(actor, memory: Memory, agent_ids) -> list[str]:
    if not access.can(actor, access.Action.SHARE, memory):
        raise Forbidden("Only the owner or an admin of the memory's namespace may un-share it.")
    for agent in _agents_named(agent_ids):
        remove_perm(access.SHARE_PERMISSION, agent.user, memory)
    return shared_agent_ids(memory)


def shared_agent_ids(memory: Memory) -> list[str]:
    from .models import MemoryUserObjectPermission

    return sorted(
        Agent.objects.filter(
            user__in=MemoryUserObjectPermission.objects.filter(
                content_object=memory, permission__codename=access.SHARE_PERMISSION
            ).values("user")
        ).values_list("agent_id", flat=True)
    )


FEEDBACK_STEP = 0.1


@transaction.atomic
@as_service  # readers vote on memories they may not write: the write rule in RLS would refuse it
def record_feedback(actor, memory: Memory, useful) -> Memory:
    """A reader says whether a memory helped: one vote per reader and memory, a new vote replaces the old.

    Each vote moves learning_weight by FEEDBACK_STEP (bounded), so the weight moves by the change
    of a reader's vote only: repeating a vote changes nothing.
    """
    if not isinstance(useful, bool):
        raise InvalidInput("useful must be true or false.", field="useful")
    from .models import MemoryFeedback

    voter = access.Principal.of(actor).user
    previous = MemoryFeedback.objects.filter(memory=memory, voter=voter).first()
    old_vote = 0 if previous is None else (1 if previous.useful else -1)
    new_vote = 1 if useful else -1
    if previous is None:
        MemoryFeedback.objects.create(memory=memory, voter=voter, useful=useful)
    elif previous.useful != useful:
        previous.useful = useful
        previous.save(update_fields=["useful", "updated_at"])
    if new_vote != old_vote:
        low, high = LEARNING_WEIGHT_RANGE
        moved = F("learning_weight") + FEEDBACK_STEP * (new_vote - old_vote)
        Memory.objects.filter(pk=memory.pk).update(learning_weight=Least(Greatest(moved, low), high))
        memory.learning_weight = Memory.objects.values_list("learning_weight", flat=True).get(pk=memory.pk)
    return memory
