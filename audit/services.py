"""The one way to write the audit trail: `record`, called by each service in the transaction of its change."""
from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

from django.apps import apps

from core.db import service_role
from core.principal import Principal
from core.request_context import current_request_id

from .choices import ActorKind, AuditAction
from .models import AuditEntry

# Keys an entry's before/after never hold, at any depth: what a memory says is erased with it.
FORBIDDEN_KEYS = frozenset({"content"})


def actor_label(actor) -> tuple[str | None, str]:
    """The actor as the trail names it: (agent_id | "operator:<username>" | None for the system, kind)."""
    principal = Principal.of(actor) if actor is not None else None
    if principal is None or principal.system or principal.user is None:
        return None, ActorKind.SYSTEM
    if principal.agent is not None:
        return principal.agent.agent_id, ActorKind.AGENT
    return f"operator:{principal.user.get_username()}", ActorKind.OPERATOR


def record(actor, action: AuditAction | str, *, obj=None, object_type: str = "", object_id="",
           namespace=None, before: dict | None = None, after: dict | None = None) -> AuditEntry:
    """Append one entry: `actor` did `action` to `obj` (or `object_type`/`object_id`) in `namespace`.

    Call it inside the transaction of the change, after the access check allowed it: a refused or failed
    change rolls the entry back with it. `namespace` (a Namespace or its id) decides who reads the entry;
    left out, it is `obj` itself when `obj` is a namespace, else `obj`'s namespace if it has one. `before` and
    `after` hold ids, levels, roles, names and counts; never content (a `content` key is refused).

    The entry is written as the service's database role, also inside an agent's request: the agent role holds
    no grant on the table, so an agent can neither forge nor change entries.
    """
    action = AuditAction(action)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    namespace_id, namespace_path = _namespace_of(obj, namespace)
    label, kind = actor_label(actor)
    entry = AuditEntry(
        actor=label, actor_kind=kind, action=action, object_type=object_type, object_id=str(object_id or ""),
        namespace_id=namespace_id, namespace_path=namespace_path,
        before=_plain(before, "before"), after=_plain(after, "after"), request_id=current_request_id() or "",
    )
    with service_role():
        entry.save(force_insert=True)
    return entry


def _namespace_of(obj, namespace) -> tuple[uuid.UUID | None, str]:
    namespace_model = apps.get_model("namespaces.Namespace")
    if namespace is None and obj is not None:
        if isinstance(obj, namespace_model):
            namespace = obj
        elif getattr(obj, "namespace_id", None) is not None:
            cached = obj._state.fields_cache.get("namespace")
            namespace = cached if cached is not None else obj.namespace_id
    if namespace is None:
        return None, ""
    if isinstance(namespace, namespace_model):
        return namespace.pk, namespace.path
    path = namespace_model.objects.filter(pk=namespace).values_list("path", flat=True).first()
    return uuid.UUID(str(namespace)), path or ""


def _plain(value, where: str):
    """`value` as plain JSON (ids and moments as text), refusing content."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        refused = FORBIDDEN_KEYS.intersection(value)
        if refused:
            raise ValueError(f"An audit entry never holds {sorted(refused)[0]!r} ({where}).")
        return {str(key): _plain(item, where) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(item, where) for item in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    raise TypeError(f"An audit entry holds plain JSON values; {type(value).__name__} in {where} is not one.")
