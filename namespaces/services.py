"""State changes on namespaces: creation, moves in the tree, and membership."""
from __future__ import annotations

from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

import access
import audit
from core.db import as_service
from core.errors import Conflict, Forbidden, InvalidInput, NotFound

from .contracts import AddMember, CreateNamespace, UpdateNamespace
from .models import (
    MAX_DEPTH,
    PATH_SEPARATOR,
    ROLE_PERMISSIONS,
    AccessPolicy,
    Namespace,
    NamespaceUserObjectPermission,
    Role,
    agent_model,
)


def get_namespace(slug, *, field: str = "namespace") -> Namespace:
    """Look a namespace up by slug; a missing one is bad input naming the field."""
    if not isinstance(slug, str) or not slug:
        raise InvalidInput("A namespace name is required.", field=field)
    namespace = Namespace.objects.filter(namespace=slug).first()
    if namespace is None:
        raise InvalidInput(f"Namespace '{slug[:64]}' does not exist.", field=field, code="unknown_namespace")
    return namespace


def get_agent(agent_id, *, field: str = "agent_id"):
    """Look an agent up by agent_id (to manage its memberships, or anywhere); a missing one is bad input naming the field."""
    if not isinstance(agent_id, str) or not agent_id:
        raise InvalidInput(f"{field} must be an agent id.", field=field)
    agent = agent_model().objects.select_related("user").filter(agent_id=agent_id).first()
    if agent is None:
        raise InvalidInput(f"Agent '{agent_id[:128]}' does not exist.", field=field)
    return agent


def _require_policy_below(parent: Namespace | None, policy: str) -> None:
    if not access.policy_allowed_below(parent, policy):
        closed = access.closest_closed_ancestor(parent)
        raise InvalidInput(
            f"A namespace below the closed namespace '{closed.namespace}' must be closed too.", field="access_policy"
        )


def _place(namespace: Namespace, parent: Namespace | None) -> None:
    """Set path and depth under `parent`, refusing cycles and over-deep trees."""
    if parent is not None:
        if parent.pk == namespace.pk or (namespace.path and parent.path.startswith(namespace.path + PATH_SEPARATOR)):
            raise InvalidInput("A namespace cannot be moved under itself or its descendants.", field="parent_namespace")
        if parent.depth + 1 >= MAX_DEPTH:
            raise InvalidInput(f"Namespaces nest at most {MAX_DEPTH} levels deep.", field="parent_namespace")
    namespace.parent = parent
    namespace.depth = 0 if parent is None else parent.depth + 1
    namespace.path = namespace.namespace if parent is None else f"{parent.path}{PATH_SEPARATOR}{namespace.namespace}"


@transaction.atomic
@as_service
def create_namespace(actor, data: CreateNamespace) -> Namespace:
    """Create a namespace. A non-admin agent that creates a child of a namespace it administers becomes its admin."""
    parent = get_namespace(data.parent_namespace, field="parent_namespace") if data.parent_namespace else None
    if not access.can_create_namespace(actor, parent):
        closed = access.closest_closed_ancestor(parent)
        if closed is not None:
            raise Forbidden(f"Below the closed namespace '{closed.namespace}', only operators whose namespaces "
                            "hold it create namespaces.")
        raise Forbidden("Only operators, admin agents and admins of the parent namespace create namespaces.")
    _require_policy_below(parent, data.access_policy)
    if Namespace.objects.filter(namespace=data.namespace).exists():
        raise Conflict(f"Namespace '{data.namespace}' already exists.", field="namespace", code="duplicate")
    created = Namespace(
        namespace=data.namespace,
        display_name=data.display_name or data.namespace,
        description=data.description,
        access_policy=data.access_policy,
        metadata=dict(data.metadata),
    )
    _place(created, parent)
    created.save()
    creator = access.administers_what_it_creates(actor)
    if creator is not None:
        set_role(creator, created, Role.ADMIN)
    audit.record(actor, audit.AuditAction.NAMESPACE_CREATE, obj=created, after={
        **_audited_state(created), "admin": creator.agent_id if creator is not None else None})
    return created


def _audited_state(namespace: Namespace) -> dict:
    return {"namespace": namespace.namespace, "path": namespace.path, "access_policy": namespace.access_policy}


@transaction.atomic
@as_service
def update_namespace(actor, namespace: Namespace, data: UpdateNamespace) -> Namespace:
    """Change a namespace's description, policy or parent (the fields given only); a move rewrites the subtree's paths."""
    if not access.is_namespace_admin(actor, namespace):
        raise Forbidden("Only admins of this namespace, admin agents and operators may change it.")
    changes = data.given()
    before = _audited_state(namespace)
    for field in ("display_name", "description", "metadata"):
        if field in changes:
            setattr(namespace, field, changes[field])
    if "access_policy" in changes:
        if changes["access_policy"] != namespace.access_policy and not access.can_add_member(actor, namespace):
            raise Forbidden("Only operators may change the policy of a closed namespace.")
        namespace.access_policy = changes["access_policy"]
    parent = namespace.parent
    if "parent_namespace" in changes:
        slug = changes["parent_namespace"]
        parent = get_namespace(slug, field="parent_namespace") if slug else None
        # A move needs the same right as creating a namespace there (for the root: operators and admin agents).
        if parent != namespace.parent and not access.can_create_namespace(actor, parent):
            raise Forbidden("Moving a namespace needs admin rights on the new parent (operator rights below a "
                            "closed namespace).")
    moving = "parent_namespace" in changes and parent != namespace.parent
    if moving or "access_policy" in changes:
        # Nothing below a closed namespace is more open than it: the namespace, and on a move its subtree.
        _require_policy_below(parent, namespace.access_policy)
    if moving and access.closest_closed_ancestor(parent) is not None:
        subtree = Namespace.objects.filter(path__startswith=namespace.path + PATH_SEPARATOR)
        for policy in subtree.exclude(access_policy=AccessPolicy.CLOSED).values_list("access_policy", flat=True)[:1]:
            _require_policy_below(parent, policy)
    if moving:
        old_path = namespace.path
        _place(namespace, parent)
        descendants = list(Namespace.objects.select_for_update().filter(path__startswith=old_path + PATH_SEPARATOR))
        if descendants and max(d.depth for d in descendants) - namespace_depth(old_path) + namespace.depth >= MAX_DEPTH:
            raise InvalidInput(f"Namespaces nest at most {MAX_DEPTH} levels deep.", field="parent_namespace")
        for descendant in descendants:
            descendant.path = namespace.path + descendant.path[len(old_path):]
            descendant.depth = namespace_depth(descendant.path)
        Namespace.objects.bulk_update(descendants, ["path", "depth"])
    namespace.save()
    after = _audited_state(namespace)
    fields = sorted(changes)
    if fields:
        audit.record(actor, audit.AuditAction.NAMESPACE_UPDATE, obj=namespace,
                     before=before, after={**after, "fields": fields})
    return namespace


def namespace_depth(path: str) -> int:
    return path.count(PATH_SEPARATOR)


@transaction.atomic
@as_service
def delete_namespace(actor, namespace: Namespace) -> None:
    if not access.can_delete_namespace(actor, namespace):
        raise Forbidden("Only operators and admin agents delete namespaces.")
    if namespace.children.exists():
        raise Conflict("The namespace has child namespaces; move or delete them first.", code="not_empty")
    # Counted as the service (past row-level security): memories the caller cannot see, such as
    # another agent's private ones, hold the namespace too, and it is never deleted from under them.
    if namespace.memories.exists() or namespace.home_agents.exists():
        raise Conflict("The namespace still holds memories or is an agent's home namespace.", code="not_empty")
    audit.record(actor, audit.AuditAction.NAMESPACE_DELETE, obj=namespace, before=_audited_state(namespace))
    namespace.delete()


def role_of(agent, namespace: Namespace) -> Role | None:
    """The role `agent` holds in `namespace` by grant (admin, member) or None (the home namespace aside)."""
    codenames = set(NamespaceUserObjectPermission.objects.filter(
        user_id=agent.user_id, content_object=namespace, permission__codename__in=ROLE_PERMISSIONS.values()
    ).values_list("permission__codename", flat=True))
    for role in (Role.ADMIN, Role.MEMBER):
        if ROLE_PERMISSIONS[role] in codenames:
            return role
    return None


def _record_role(actor, namespace: Namespace, agent, before: Role | None, after: Role | None) -> None:
    """Record a membership change in the audit trail: added, removed, or a new role (nothing when none changed)."""
    if before == after:
        return
    action = (audit.AuditAction.NAMESPACE_MEMBER_ADD if before is None
              else audit.AuditAction.NAMESPACE_MEMBER_REMOVE if after is None
              else audit.AuditAction.NAMESPACE_ROLE_CHANGE)
    audit.record(actor, action, obj=agent, namespace=namespace,
                 before={"agent_id": agent.agent_id, "role": before}, after={"agent_id": agent.agent_id, "role": after})


def set_role(agent, namespace: Namespace, role: Role | str) -> None:
    """Give `agent` exactly `role` (a Role) in `namespace` (admins are members too)."""
    assign_perm(ROLE_PERMISSIONS[Role.MEMBER], agent.user, namespace)
    if role == Role.ADMIN:
        assign_perm(ROLE_PERMISSIONS[Role.ADMIN], agent.user, namespace)
    else:
        remove_perm(ROLE_PERMISSIONS[Role.ADMIN], agent.user, namespace)


@transaction.atomic
@as_service
def add_member(actor, namespace: Namespace, data: AddMember):
    """Give the agent `data.agent_id` the role `data.role` in `namespace`; returns the agent."""
    agent = get_agent(data.agent_id)
    if not access.can_add_member(actor, namespace):
        if namespace.access_policy == AccessPolicy.CLOSED:
            raise Forbidden("Only operators add members to a closed namespace.")
        raise Forbidden("Only admins of this namespace and operators add members.")
    before = role_of(agent, namespace)
    set_role(agent, namespace, data.role)
    _record_role(actor, namespace, agent, before, Role(data.role))
    return agent


@transaction.atomic
@as_service
def remove_member(actor, namespace: Namespace, agent) -> None:
    if not access.can_remove_member(actor, namespace, agent):
        raise Forbidden("Only admins of this namespace and operators remove members.")
    if agent.namespace_id == namespace.pk:
        raise InvalidInput("An agent cannot leave its home namespace; change its home namespace first.")
    before = role_of(agent, namespace)
    for codename in ROLE_PERMISSIONS.values():
        remove_perm(codename, agent.user, namespace)
    _record_role(actor, namespace, agent, before, None)


@transaction.atomic
@as_service
def join_namespace(actor, namespace: Namespace) -> None:
    """The calling agent becomes a member of an open namespace (joining twice changes nothing)."""
    agent = access.Principal.of(actor).agent
    if agent is None:
        raise Forbidden("Only agents join namespaces; operators add members.")
    if access.is_member(agent, namespace):
        return
    if not access.can_join(agent, namespace):
        raise Forbidden(f"Namespace '{namespace.namespace}' is {namespace.access_policy}: ask an admin to add you.")
    before = role_of(agent, namespace)
    set_role(agent, namespace, Role.MEMBER)
    _record_role(actor, namespace, agent, before, Role.MEMBER)


def visible_namespace_or_404(actor, slug: str) -> Namespace:
    namespace = Namespace.objects.filter(access.namespace_visibility_q(actor)).filter(namespace=slug).first()
    if namespace is None:
        raise NotFound(f"Namespace '{str(slug)[:64]}' not found.")
    return namespace
