"""State changes on memories. Every write checks access first and changes nothing on refusal."""
from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest, Least
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

import access
import audit
from agents.models import Agent
from agents.services import get_agent
from core import validation
from core.db import as_service, change_noted
from core.errors import Forbidden, InvalidInput, NotFound
from core.models import find_visible
from namespaces.services import get_namespace

from . import usage
from .choices import AccessLevel, EmbeddingStatus, UsageKind
from .contracts import (
    LEARNING_WEIGHT_RANGE,
    MAX_METADATA_DEPTH,
    Feedback,
    RestoreVersion,
    ShareMemory,
    StoreMemories,
    StoreMemory,
    UpdateMemories,
    UpdateMemory,
)
from .models import Memory, MemoryVersion, VersionChange
from .tasks import enqueue_embedding


def clean_owned_metadata(actor, metadata: dict, stored: dict | None = None, kind: str = "memory") -> dict:
    """Metadata of a memory (or task, workflow) as given, except that agents never write what the import records."""
    metadata = validation.json_object(metadata, "metadata", max_depth=MAX_METADATA_DEPTH)
    metadata, refused = access.reserved_metadata(actor, kind, stored, metadata)
    if refused:
        raise Forbidden(
            f"metadata.{refused} is recorded by the persona-era import and is read-only for agents.",
            field=f"metadata.{refused}", code="reserved_metadata",
        )
    return metadata


# --- Lookups -------------------------------------------------------------------------------

def get_visible_memory(actor, memory_id, *, current: bool = True) -> Memory:
    """A memory the actor may read, or NotFound (hidden and missing look the same).

    `current=False` also finds memories a merge retired (and expired ones not deleted yet): for history and restore.
    """
    return find_visible(Memory.objects.visible_to(actor, current=current).for_display(), memory_id, "Memory")


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


def _build_memory(actor, data: StoreMemory, namespaces: dict | None = None, decisions: dict | None = None) -> Memory:
    """An unsaved memory, checked against the database; `namespaces` and `decisions` are shared by a bulk call."""
    principal = access.Principal.of(actor)
    if data.namespace is None and principal.agent is not None:
        namespace = principal.agent.namespace
    else:
        namespace = (namespaces or {}).get(data.namespace) or get_namespace(data.namespace)
    decisions = {} if decisions is None else decisions
    key = (namespace.pk, data.access_level)
    if key not in decisions:
        decisions[key] = access.can_create_memory(actor, namespace, data.access_level)
    allowed, reason = decisions[key]
    if not allowed:
        raise Forbidden(reason, field="access_level" if data.access_level == AccessLevel.SYSTEM else "namespace")
    owner = _owner_for(actor, data.agent_id, data.access_level)
    parent = None
    if data.parent_memory_id is not None:
        parent = Memory.objects.visible_to(actor).filter(pk=data.parent_memory_id).first()
        if parent is None:
            raise InvalidInput("parent_memory_id names no memory you can see.", field="parent_memory_id")
    return Memory(
        content=data.content,
        access_level=data.access_level,
        namespace=namespace,
        agent=owner,
        context_tags=list(data.context_tags),
        memory_category=data.memory_category,
        learning_weight=data.learning_weight,
        parent_memory=parent,
        metadata=clean_owned_metadata(actor, dict(data.metadata)),
        expires_at=data.expiry(timezone.now()),
        embedding_status=EmbeddingStatus.PENDING,
    )


@transaction.atomic
def create_memory(actor, data: StoreMemory) -> Memory:
    """Store one memory; its embedding is computed in the background after commit."""
    memory = _build_memory(actor, data)
    with change_noted(access.Principal.of(actor)):
        memory.save()
    memory.has_no_usage_yet()
    enqueue_embedding([memory.pk])
    return memory


@transaction.atomic
def bulk_create_memories(actor, data: StoreMemories) -> list[Memory]:
    """Store up to TMWS_MAX_BULK_MEMORIES memories, all or nothing: one refused item rejects the lot."""
    limit = settings.TMWS_MAX_BULK_MEMORIES
    if len(data.memories) > limit:
        raise InvalidInput(f"At most {limit} memories per bulk call.", field="memories")
    from namespaces.models import Namespace

    slugs = {item.namespace for item in data.memories if item.namespace}
    namespaces = {ns.namespace: ns for ns in Namespace.objects.filter(namespace__in=slugs)}
    built, decisions = [], {}
    for index, item in enumerate(data.memories):
        try:
            built.append(_build_memory(actor, item, namespaces, decisions))
        except (InvalidInput, Forbidden) as exc:
            field = f"memories[{index}].{exc.field}" if exc.field else f"memories[{index}]"
            raise type(exc)(f"memories[{index}]: {exc.message}", field=field, code=exc.code) from exc
    with change_noted(access.Principal.of(actor)):
        Memory.objects.bulk_create(built, batch_size=500)
    enqueue_embedding([m.pk for m in built])
    return built


@transaction.atomic
def update_memory(actor, memory: Memory, data: UpdateMemory) -> Memory:
    """Change a memory the actor may write (the fields given only); new content resets the embedding to pending."""
    return _save_changes(actor, memory, _apply_changes(actor, memory, data))


def _apply_changes(actor, memory: Memory, data: UpdateMemory) -> set[str]:
    """Set the changes on `memory` after the checks; returns the fields to save."""
    if not access.can(actor, access.Action.CHANGE, memory):
        raise Forbidden("You may read this memory but not change it.")
    changes = data.given()
    fields = {"updated_at"}
    if changes.get("content") is not None and changes["content"] != memory.content:
        memory.content = changes["content"]
        memory.embedding = None
        memory.embedding_model = ""
        memory.embedding_status = EmbeddingStatus.PENDING
        memory.embedding_error = ""
        memory.embedding_attempts = 0
        fields |= {"content", "embedding", "embedding_model", "embedding_status", "embedding_error",
                   "embedding_attempts"}
    if changes.get("access_level") is not None or changes.get("namespace") is not None:
        level = changes.get("access_level") or memory.access_level
        namespace = get_namespace(changes["namespace"]) if changes.get("namespace") else memory.namespace
        moving = level != memory.access_level or namespace.pk != memory.namespace_id
        if moving and not access.can(actor, access.Action.RECLASSIFY, memory):
            raise Forbidden("Only the owner may change a memory's access level or namespace.")
        allowed, reason = access.can_create_memory(actor, namespace, level)
        if not allowed or (memory.access_level == AccessLevel.SYSTEM and level != AccessLevel.SYSTEM
                           and memory.agent_id is None):
            raise Forbidden(reason or "A system memory without an owner must stay a system memory.")
        memory.access_level, memory.namespace = level, namespace
        fields |= {"access_level", "namespace"}
    for name in ("context_tags", "memory_category", "learning_weight"):
        if name in changes:
            setattr(memory, name, changes[name])
            fields.add(name)
    if "metadata" in changes:
        memory.metadata = clean_owned_metadata(actor, dict(data.metadata), memory.metadata)
        fields.add("metadata")
    if "expires_at" in changes or "ttl_seconds" in changes:
        memory.expires_at = data.expiry(timezone.now())
        fields.add("expires_at")
    return fields


@transaction.atomic
def bulk_update_memories(actor, data: UpdateMemories) -> list[Memory]:
    """Set the category, weight or expiry of many memories, all or nothing: one memory the actor may not read
    answers 404 and one it may not change 403, and then nothing changes."""
    ids = list(dict.fromkeys(data.memory_ids))
    found = Memory.objects.visible_to(actor).filter(pk__in=ids).in_bulk()
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise NotFound(f"Memory '{missing[0]}' not found.")
    given = data.given()
    expiry = data.expiry(timezone.now()) if {"expires_at", "ttl_seconds"} & given.keys() else None
    memories = [found[pk] for pk in ids]
    for memory in memories:
        if not access.can(actor, access.Action.CHANGE, memory):
            raise Forbidden(f"You may read memory '{memory.pk}' but not change it.", field="memory_ids")
    for memory in memories:
        fields = {"updated_at"}
        for name in ("memory_category", "learning_weight"):
            if name in given:
                setattr(memory, name, given[name] if given[name] is not None else Memory._meta.get_field(name).default)
                fields.add(name)
        if {"expires_at", "ttl_seconds"} & given.keys():
            memory.expires_at = expiry
            fields.add("expires_at")
        _save_changes(actor, memory, fields)
    return memories


def _save_changes(actor, memory: Memory, fields: set[str]) -> Memory:
    with change_noted(access.Principal.of(actor)):
        memory.save(update_fields=sorted(fields))
    if "embedding_status" in fields:
        enqueue_embedding([memory.pk])
    return memory


def explain_access(actor, memory: Memory) -> dict:
    """Why the actor may read the memory and, for its owner and operators, who else may (access.explain)."""
    from access.explain import readers, why_can_read

    principal = access.Principal.of(actor)
    return {"memory_id": str(memory.pk), "access_level": memory.access_level, "namespace": memory.namespace.path,
            "you": why_can_read(principal, memory),
            "readers": readers(principal, memory) if access.can_see_readers(principal, memory) else None}


def memory_history(actor, memory: Memory):
    """The versions of a memory the actor could read while they were current, newest first."""
    return MemoryVersion.objects.visible_to(actor).for_display().filter(memory=memory).order_by("-version")


@transaction.atomic
def restore_memory(actor, memory: Memory, data: RestoreVersion) -> Memory:
    """Make an earlier version current again, as a new version (the actor must be able to change the memory).

    A memory a merge retired becomes current again too; the merged memory stays as it is.
    """
    version = MemoryVersion.objects.visible_to(actor).select_related("namespace").filter(
        memory=memory, version=data.version).first()
    if version is None:
        raise NotFound(f"This memory has no version {data.version} you may read.", field="version")
    changes = UpdateMemory.parse({
        "content": version.content, "access_level": version.access_level, "namespace": version.namespace.namespace,
        "context_tags": version.context_tags, "memory_category": version.memory_category,
        "learning_weight": version.learning_weight,
    })
    before = {**_audited_state(memory), "retired": memory.retired_into_id is not None}
    fields = _apply_changes(actor, memory, changes)
    if memory.retired_into_id is not None:
        memory.retired_into = None
        fields.add("retired_into")
    with change_noted(access.Principal.of(actor), VersionChange.RESTORE):
        restored = _save_changes(actor, memory, fields)
    audit.record(actor, audit.AuditAction.MEMORY_RESTORE, obj=restored, before=before,
                 after={"restored_version": data.version, **_audited_state(restored)})
    return restored


def _audited_state(memory: Memory) -> dict:
    """What the audit trail keeps of a memory's state: never its content or its tags, only their count."""
    return {"access_level": memory.access_level, "namespace": memory.namespace.path,
            "owner": memory.agent.agent_id if memory.agent_id else None, "tags_count": len(memory.context_tags or [])}


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
    audit.record(actor, audit.AuditAction.MEMORY_DELETE, obj=memory, before=_audited_state(memory))
    memory.delete()


def _agents_named(agent_ids: list[str]) -> list[Agent]:
    agents = list(Agent.objects.select_related("user").filter(agent_id__in=agent_ids))
    missing = sorted(set(agent_ids) - {a.agent_id for a in agents})
    if missing:
        raise InvalidInput(f"Unknown agent '{missing[0][:128]}'.", field="agent_ids")
    return agents


@transaction.atomic
@as_service  # share grants are written by the service, never by the agent role
def share_memory(actor, memory: Memory, data: ShareMemory) -> list[str]:
    """Let named agents read a shared memory (owner or namespace admin only)."""
    if not access.can(actor, access.Action.SHARE, memory):
        raise Forbidden("Only the owner or an admin of the memory's namespace may share it.")
    if memory.access_level != AccessLevel.SHARED:
        raise InvalidInput("Only memories with access_level 'shared' can be shared with agents.", field="access_level")
    agents = _agents_named(data.agent_ids)
    before = shared_agent_ids(memory)
    for agent in agents:
        assign_perm(access.SHARE_PERMISSION, agent.user, memory)
    return _record_shares(actor, audit.AuditAction.MEMORY_SHARE, memory, before)


@transaction.atomic
@as_service  # share grants are written by the service, never by the agent role
def unshare_memory(actor, memory: Memory, data: ShareMemory) -> list[str]:
    if not access.can(actor, access.Action.SHARE, memory):
        raise Forbidden("Only the owner or an admin of the memory's namespace may un-share it.")
    agents = _agents_named(data.agent_ids)
    before = shared_agent_ids(memory)
    for agent in agents:
        remove_perm(access.SHARE_PERMISSION, agent.user, memory)
    return _record_shares(actor, audit.AuditAction.MEMORY_UNSHARE, memory, before)


def _record_shares(actor, action, memory: Memory, before: list[str]) -> list[str]:
    """The agents the memory is shared with now, recording the change (if any) in the audit trail."""
    after = shared_agent_ids(memory)
    if after != before:
        audit.record(actor, action, obj=memory, before={"shared_with": before}, after={"shared_with": after})
    return after


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
def record_feedback(actor, memory: Memory, data: Feedback) -> Memory:
    """A reader says whether a memory helped: one vote per reader and memory, a new vote replaces the old.

    Each vote moves learning_weight by FEEDBACK_STEP (bounded), so the weight moves by the change
    of a reader's vote only: repeating a vote changes nothing.
    """
    useful = data.useful
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
    usage.track_use(actor, UsageKind.FEEDBACK, [memory.pk], useful=useful)
    return memory
