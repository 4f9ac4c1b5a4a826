"""What an export-import round trip must keep, read the same way in the test's database and in a second one.

The round-trip test calls these in its own process and, through `manage.py shell`, in a process on the database
it imported into; both answers must be equal.
"""
from __future__ import annotations

import json

from django.db import transaction

from access import SHARE_PERMISSION, SYSTEM
from agents.models import Agent
from memories.models import Memory, MemoryUserObjectPermission, MemoryVersion
from memories.search import clean_request, search
from namespaces.models import NamespaceUserObjectPermission


def search_ids(searches: list[tuple[str, dict]]) -> list[list[str]]:
    """The ids each search finds, in order: [(agent_id or "system", search body)]."""
    found = []
    for actor_name, body in searches:
        actor = SYSTEM if actor_name == "system" else Agent.objects.select_related("user", "namespace").get(
            agent_id=actor_name)
        with transaction.atomic():
            found.append([str(hit.memory.pk) for hit in search(actor, clean_request(body)).hits])
    return found


def _moment(value) -> str | None:
    return value.isoformat() if value else None


def state() -> dict:
    """Every memory with its embedding, versions and shares; the agents and namespaces they name."""
    memories = [
        [str(m.pk), m.content, m.agent.agent_id if m.agent else None, m.namespace.path, m.access_level, m.context_tags,
         m.memory_category, m.learning_weight, m.metadata, str(m.parent_memory_id) if m.parent_memory_id else None,
         _moment(m.created_at), _moment(m.updated_at), _moment(m.expires_at), m.embedding_model,
         None if m.embedding is None else list(m.embedding)]
        for m in Memory.objects.unexpired().select_related("agent", "namespace").order_by("sequence")
    ]
    live = Memory.objects.unexpired().values("pk")
    versions = [
        [str(v.memory_id), v.version, v.change, v.content, v.access_level, v.namespace.path,
         v.agent.agent_id if v.agent else None, v.context_tags, v.memory_category, v.learning_weight,
         _moment(v.changed_at), v.changed_by_agent.agent_id if v.changed_by_agent else None]
        for v in MemoryVersion.objects.for_display().filter(memory_id__in=live).order_by("memory_id", "version")
    ]
    shares = sorted(
        [str(memory_id), agent_id] for memory_id, agent_id in MemoryUserObjectPermission.objects.filter(
            permission__codename=SHARE_PERMISSION, content_object__in=live,
        ).values_list("content_object_id", "user__agent__agent_id"))
    agents = [
        [a.agent_id, a.display_name, a.agent_type, a.capabilities, a.access_level, a.namespace.path,
         sorted({path for path in NamespaceUserObjectPermission.objects.filter(user=a.user).values_list(
             "content_object__path", flat=True)})]
        for a in Agent.objects.select_related("namespace", "user").filter(
            pk__in=Memory.objects.unexpired().values("agent_id")).order_by("agent_id")
    ]
    namespaces = sorted({(m.namespace.path, m.namespace.access_policy)
                         for m in Memory.objects.unexpired().select_related("namespace")})
    return {"memories": memories, "versions": versions, "shares": shares, "agents": agents,
            "namespaces": [list(pair) for pair in namespaces]}


def main(spec_path: str) -> None:
    """For `manage.py shell -c`: print the searches' ids and the state as one JSON object."""
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    print(json.dumps({"searches": search_ids(spec["searches"]), "state": state()}))
