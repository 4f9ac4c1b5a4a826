"""Why a principal may read a memory, and who else may: the read rule of `access`, spelled out.

`why_can_read(actor, memory)` gives the reasons (empty: it may not), in the order the rule tests them; the tests
hold it to `memory_visibility_q` for every principal and memory, so the two cannot drift apart. `readers(memory)`
lists the agents that may read a memory and why, for its owner (`GET /api/v2/memories/{id}/access`) and the
admin's "who can read this".

A reason is a dict: `{"reason": "owner"}`, `{"reason": "public"}`, `{"reason": "system"}`,
`{"reason": "member", "namespace": "team"}`, `{"reason": "member_below", "namespace": "team", "via": "team/squad"}`
(a member of a namespace below reads the shared memories of the ones above), `{"reason": "shared_with",
"shared_by": "owner-agent"}` (an explicit share; who granted it comes from the audit trail, null when it predates
it), `{"reason": "superuser"}` and `{"reason": "operator_scope", "namespace": "company"}`.
"""
from __future__ import annotations

from django.apps import apps

from core.db import service_role
from core.principal import Principal

from . import (
    ROLE_PERMISSIONS,
    SHARE_PERMISSION,
    can_see_operator_names,
    member_namespace_ids,
    operator_namespace_ids,
)
from .choices import AccessLevel

MAX_LISTED_READERS = 200


def _model(label: str):
    return apps.get_model(label)


def _within(path: str, namespace_path: str) -> bool:
    """Whether `path` is `namespace_path` or lies below it."""
    return path == namespace_path or path.startswith(namespace_path + "/")


def why_can_read(actor, memory) -> list[dict]:
    """The reasons `actor` may read `memory` (an empty list: it may not)."""
    principal = Principal.of(actor)
    if principal.agent is None:
        return _operator_reasons(principal, memory)
    reasons = []
    if memory.agent_id == principal.agent.pk:
        reasons.append({"reason": "owner"})
    if memory.access_level in (AccessLevel.PUBLIC, AccessLevel.SYSTEM):
        reasons.append({"reason": memory.access_level})
    if memory.access_level == AccessLevel.SHARED:
        paths = _model("namespaces.Namespace").objects.filter(pk__in=member_namespace_ids(principal))
        reasons += _membership_reasons(paths.values_list("path", flat=True), memory.namespace.path)
        if _shared_with(principal.user_id, memory):
            reasons.append({"reason": "shared_with", "shared_by": _shared_by(principal, memory, principal.agent)})
    return reasons


def _operator_reasons(principal: Principal, memory) -> list[dict]:
    if principal.is_superuser:
        return [{"reason": "superuser"}]
    if not principal.is_operator or memory.namespace_id not in operator_namespace_ids(principal):
        return []
    namespaces = _model("namespaces.Namespace").objects
    granted = namespaces.filter(
        namespaceuserobjectpermission__user_id=principal.user_id,
        namespaceuserobjectpermission__permission__codename__in=("view_namespace", "change_namespace"),
    ).values_list("path", flat=True).distinct()
    path = memory.namespace.path
    roots = sorted(root for root in granted if _within(path, root))
    return [{"reason": "operator_scope", "namespace": roots[0] if roots else path}]


def _membership_reasons(member_paths, path: str) -> list[dict]:
    """Member of the namespace at `path`, or of namespaces below it (each one named)."""
    reasons = []
    for member_path in sorted(member_paths):
        if member_path == path:
            reasons.insert(0, {"reason": "member", "namespace": path})
        elif _within(member_path, path):
            reasons.append({"reason": "member_below", "namespace": path, "via": member_path})
    return reasons


def _shared_with(user_id, memory) -> bool:
    return _model("memories.MemoryUserObjectPermission").objects.filter(
        content_object_id=memory.pk, user_id=user_id, permission__codename=SHARE_PERMISSION).exists()


def _shared_by(viewer: Principal, memory, agent) -> str | None:
    """Who granted `agent` its share of `memory`, from the audit trail (None if the share predates it)."""
    entries = _model("audit.AuditEntry").objects.filter(
        action="memory.share", object_id=str(memory.pk), after__shared_with__contains=[agent.agent_id],
    ).exclude(before__shared_with__contains=[agent.agent_id]).order_by("-at")
    with service_role():  # the agent role holds no grant on the audit trail; this reads one name from it
        granter = entries.values_list("actor", flat=True).first()
    if granter and granter.startswith("operator:") and not can_see_operator_names(viewer):
        return "operator"
    return granter


def readers(viewer, memory) -> dict:
    """Who may read `memory`: `everyone` (public and system memories) or the agents, each with its reasons.

    Operators who may read it through their scope are not listed; `truncated` says the list stopped at
    MAX_LISTED_READERS agents.
    """
    viewer = Principal.of(viewer)
    if memory.access_level in (AccessLevel.PUBLIC, AccessLevel.SYSTEM):
        return {"everyone": True, "reason": memory.access_level, "agents": [], "truncated": False}
    agents = _model("agents.Agent").objects.select_related("user")
    by_agent: dict = {}
    if memory.agent_id is not None:
        by_agent.setdefault(memory.agent_id, []).append({"reason": "owner"})
    if memory.access_level == AccessLevel.SHARED:
        _add_members(by_agent, memory)
        grants = _model("memories.MemoryUserObjectPermission").objects.filter(
            content_object_id=memory.pk, permission__codename=SHARE_PERMISSION).values("user_id")
        for agent in agents.filter(user_id__in=grants).order_by("agent_id"):
            by_agent.setdefault(agent.pk, []).append(
                {"reason": "shared_with", "shared_by": _shared_by(viewer, memory, agent)})
    listed = sorted(agents.filter(pk__in=list(by_agent)[:MAX_LISTED_READERS]), key=lambda agent: agent.agent_id)
    return {
        "everyone": False, "reason": None,
        "agents": [{"agent_id": agent.agent_id, "reasons": by_agent[agent.pk]} for agent in listed],
        "truncated": len(by_agent) > MAX_LISTED_READERS,
    }


def _add_members(by_agent: dict, memory) -> None:
    """Agents whose home namespace, or a namespace they are a member of, is the memory's or lies below it."""
    path = memory.namespace.path
    namespaces = _model("namespaces.Namespace").objects
    below = dict(namespaces.filter(path__startswith=path + "/").values_list("pk", "path"))
    below[memory.namespace_id] = path
    members: dict = {}
    for agent_id, namespace_id in _model("agents.Agent").objects.filter(namespace_id__in=below).values_list(
            "pk", "namespace_id"):
        members.setdefault(agent_id, set()).add(namespace_id)
    grants = _model("namespaces.NamespaceUserObjectPermission").objects.filter(
        content_object_id__in=below, permission__codename__in=ROLE_PERMISSIONS.values(),
    ).values_list("user__agent__pk", "content_object_id")
    for agent_id, namespace_id in grants:
        if agent_id is not None:
            members.setdefault(agent_id, set()).add(namespace_id)
    for agent_id, namespace_ids in members.items():
        reasons = _membership_reasons([below[namespace_id] for namespace_id in namespace_ids], path)
        by_agent.setdefault(agent_id, []).extend(reasons)


def describe(reason: dict) -> str:
    """A reason in words, for pages."""
    kind = reason["reason"]
    if kind == "member":
        return f"member of {reason['namespace']}"
    if kind == "member_below":
        return f"member of {reason['via']}, below {reason['namespace']}"
    if kind == "shared_with":
        return f"shared with it by {reason['shared_by']}" if reason.get("shared_by") else "shared with it"
    if kind == "operator_scope":
        return f"operator of {reason['namespace']}"
    return {"owner": "owner", "public": "public: every agent", "system": "system: every agent",
            "superuser": "superuser"}[kind]
