"""The access-control world: the `team` cast, an operator, and one memory per access level.

Memories live in `team` and belong to `owner-agent`, except the system memory, which the admin
agent creates. The shared memory is also shared explicitly with `sharee-agent`. Tests that
search use `searchable_world`, which runs the embedding queued on creation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from memories.contracts import ShareMemory, StoreMemories, StoreMemory
from memories.models import Memory, MemoryUserObjectPermission
from memories.services import bulk_create_memories, create_memory, share_memory

PRINCIPALS = (
    "owner", "member", "descendant", "ancestor", "outsider", "sharee", "ns_admin", "admin", "operator",
)
LEVELS = ("private", "shared", "public", "system")

# One distinctive word per memory, so keyword search can aim at exactly one of them.
CONTENT = {
    "private": "The private launch code word is heliotrope.",
    "shared": "The team standup moves to half past nine on Thursdays.",
    "public": "Our public style guide prefers short sentences and plain words.",
    "system": "System notice: the maintenance window is Sunday night.",
}
KEYWORD = {"private": "heliotrope", "shared": "standup", "public": "sentences", "system": "maintenance"}

# ARCHITECTURE section 5, for memories in `team` owned by `owner-agent`.
READERS = {
    "private": {"owner", "operator"},
    "shared": {"owner", "member", "descendant", "sharee", "ns_admin", "operator"},
    "public": set(PRINCIPALS),
    "system": set(PRINCIPALS),
}
WRITERS = {
    "private": {"owner", "operator"},
    "shared": {"owner", "ns_admin", "operator"},
    "public": {"owner", "operator"},
    "system": {"admin", "operator"},
}
# Who may share or un-share: the owner or an admin of the memory's namespace (operators too);
# for system memories the principals that write them.
SHARERS = {
    "private": {"owner", "operator"},
    "shared": {"owner", "ns_admin", "operator"},
    "public": {"owner", "operator"},
    "system": {"admin", "operator"},
}


def expected_status(principal: str, level: str, allowed: dict, ok: int) -> int:
    """`ok` for allowed principals, 403 for those who only read, 404 for those who cannot see."""
    if principal in allowed[level]:
        return ok
    return 403 if principal in READERS[level] else 404


@dataclass
class World:
    cast: dict
    clients: dict
    memories: dict
    queued: list = field(default_factory=list)
    ids: dict = field(default_factory=dict)

    def visible_ids(self, principal: str) -> set[str]:
        return {self.ids[level] for level in LEVELS if principal in READERS[level]}

    def snapshot(self, level: str) -> dict | None:
        """Everything a write could change on a memory, read past every access check."""
        row = Memory.objects.filter(pk=self.memories[level].pk).values(
            "content", "access_level", "namespace_id", "agent_id", "context_tags", "memory_category",
            "learning_weight", "metadata", "updated_at",
        ).first()
        if row is None:
            return None
        shares = MemoryUserObjectPermission.objects.filter(content_object_id=self.memories[level].pk)
        row["shared_with"] = sorted(shares.values_list("user__agent__agent_id", flat=True))
        return row


@pytest.fixture
def world(team, operator_client, django_capture_on_commit_callbacks) -> World:
    owner, admin = team["owner"].agent, team["admin"].agent
    # Embedding is queued on commit; `searchable_world` runs the queued work when a test searches.
    with django_capture_on_commit_callbacks() as callbacks:
        owned = bulk_create_memories(
            owner,
            StoreMemories.parse(
                {"memories": [{"content": CONTENT[level], "access_level": level, "namespace": "team"} for level in LEVELS[:3]]}),
        )
        system = create_memory(admin, StoreMemory.parse(
            {"content": CONTENT["system"], "access_level": "system", "namespace": "team"}))
    memories = dict(zip(LEVELS, [*owned, system], strict=True))
    share_memory(owner, memories["shared"], ShareMemory.parse({"agent_ids": ["sharee-agent"]}))
    clients = {name: handle.client for name, handle in team.items()}
    clients["operator"] = operator_client
    world = World(cast=team, clients=clients, memories=memories, queued=list(callbacks))
    world.ids = {level: str(memory.pk) for level, memory in memories.items()}
    return world


@pytest.fixture
def searchable_world(world) -> World:
    """The world with its embeddings computed by the real model."""
    for callback in world.queued:
        callback()
    assert set(Memory.objects.values_list("embedding_status", flat=True)) == {"ready"}
    return world
