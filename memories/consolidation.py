"""Consolidation: fold a group of memories (near duplicates, say) into one, keeping the originals restorable.

The merged memory is a new memory (its history starts with a `merge` version); the originals are retired
into it: `retired_into` points at it, no read returns them, their history records the retirement as a
`merge` version, and restoring any of their versions makes them current again. Deleting the merged memory
deletes its retired originals with it (the database cascades), so erasure reaches every copy.
"""
from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

import access
import audit
from core.db import as_service, change_noted
from core.errors import Forbidden, InvalidInput, NotFound

from .choices import AccessLevel, EmbeddingStatus
from .contracts import MergeMemories
from .embeddings import configured_model
from .models import Memory, MemoryUserObjectPermission, VersionChange
from .tasks import enqueue_embedding

MAX_TAGS = 50
DEFAULT_CATEGORY = "general"


def _group(actor, data: MergeMemories) -> list[Memory]:
    """The memories named, in the order given, locked; any the actor cannot see is a 404 naming its place."""
    found = Memory.objects.visible_to(actor).select_for_update(of=("self",)).in_bulk(data.memory_ids)
    for index, memory_id in enumerate(data.memory_ids):
        if memory_id not in found:
            raise NotFound(f"memory_ids[{index}] names no memory you can see.", field=f"memory_ids[{index}]")
    return [found[memory_id] for memory_id in data.memory_ids]


def _merged_content(group: list[Memory], given: str | None) -> str:
    if given is not None:
        return given
    content = "\n\n".join(dict.fromkeys(memory.content.strip() for memory in group))
    limit = settings.TMWS_MAX_CONTENT_LENGTH
    if len(content) > limit:
        raise InvalidInput(f"The texts of the group together are {len(content)} characters, over the limit of {limit}; "
                           "give the merged memory's content.", field="content")
    return content


def _merged_tags(group: list[Memory]) -> list[str]:
    tags = list(dict.fromkeys(tag for memory in group for tag in memory.context_tags))
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"The group carries {len(tags)} different context tags together; a memory holds at most "
                           f"{MAX_TAGS}. Remove some first.", field="memory_ids")
    return tags


def _merged_category(group: list[Memory]) -> str:
    """The most frequent category other than the default (the first memory's among equals)."""
    counts = Counter(memory.memory_category for memory in group if memory.memory_category != DEFAULT_CATEGORY)
    return counts.most_common(1)[0][0] if counts else DEFAULT_CATEGORY


def _merged_expiry(group: list[Memory]):
    """None if any memory of the group never expires, else the latest expiry."""
    expiries = [memory.expires_at for memory in group]
    return None if None in expiries else max(expiries)


def _owner(actor, group: list[Memory]):
    """An agent merges into a memory of its own; an operator keeps the leading memory's owner."""
    principal = access.Principal.of(actor)
    if principal.agent is not None:
        return principal.agent
    owner = group[0].agent
    if owner is not None and not access.can_store_for(principal, owner):
        raise Forbidden(f"No right to store memories in the name of agent '{owner.agent_id}'.", field="memory_ids")
    return owner


def _reused_embedding(group: list[Memory], content: str) -> Memory | None:
    """An original with the very same text and an embedding of the configured model: its vector serves as is."""
    model = configured_model().name
    for memory in group:
        if memory.content == content and memory.embedding is not None and memory.embedding_model == model:
            return memory
    return None


@transaction.atomic
@as_service  # retires rows and grants shares the agent role may not write itself; access has decided
def merge_memories(actor, data: MergeMemories) -> Memory:
    """One memory for the group: union of tags and shares, the widest access the caller may grant, provenance in
    metadata; the originals are retired into it (restorable). Only a caller who may change every memory merges."""
    group = _group(actor, data)
    if not access.can_merge(actor, group):
        raise Forbidden("Only a caller who may change every memory of the group may merge it.", field="memory_ids")
    principal = access.Principal.of(actor)
    namespace = group[0].namespace
    owner = _owner(actor, group)
    level = access.widest_grantable_level(principal, namespace, [memory.access_level for memory in group])
    if level is None:
        raise Forbidden(f"No right to store memories in namespace '{namespace.namespace}'.", field="memory_ids")
    content = _merged_content(group, data.content)
    reused = _reused_embedding(group, content)
    merged = Memory(
        content=content,
        access_level=level,
        namespace=namespace,
        agent=owner,
        context_tags=_merged_tags(group),
        memory_category=_merged_category(group),
        learning_weight=max(memory.learning_weight for memory in group),
        expires_at=_merged_expiry(group),
        metadata={"merge": {
            "from": [str(memory.pk) for memory in group],
            "merged_at": timezone.now().isoformat(),
        }},
        embedding=reused.embedding if reused else None,
        embedding_model=reused.embedding_model if reused else "",
        embedding_status=EmbeddingStatus.READY if reused else EmbeddingStatus.PENDING,
    )
    with change_noted(principal, VersionChange.MERGE):
        merged.save()
        Memory.objects.filter(pk__in=[memory.pk for memory in group]).update(
            retired_into=merged, updated_at=timezone.now())
    if level == AccessLevel.SHARED:
        _carry_shares(group, merged)
    audit.record(actor, audit.AuditAction.MEMORY_MERGE, obj=merged,
                 before={"memory_ids": [str(memory.pk) for memory in group],
                         "access_levels": [memory.access_level for memory in group]},
                 after={"memory_id": str(merged.pk), "access_level": level, "owner": owner.agent_id if owner else None,
                        "tags_count": len(merged.context_tags)})
    merged.has_no_usage_yet()
    if reused is None:
        enqueue_embedding([merged.pk])
    return merged


def _carry_shares(group: list[Memory], merged: Memory) -> None:
    """Every agent an original was shared with may read the merged memory."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(pk__in=MemoryUserObjectPermission.objects.filter(
        content_object__in=group, permission__codename=access.SHARE_PERMISSION).values("user"))
    for user in users:
        assign_perm(access.SHARE_PERMISSION, user, merged)
