"""The one access module: every read and write path asks it who may see or change what.

Principals are agents (authenticated by API key) and operators (Django users without an
agent). Superusers see and change everything. The same visibility rule is repeated in SQL
by the row-level-security policy on `memories` (migrations namespaces/0002, memories/0005) as
defence in depth; keep the two in step. Both take an agent's readable namespaces from the
database function `tmws_readable_namespace_ids`.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import Q

from memories.choices import AccessLevel

from .models import ROLE_PERMISSIONS, AccessPolicy, Namespace, NamespaceUserObjectPermission, Role

if TYPE_CHECKING:
    from agents.models import Agent
    from memories.models import Memory

OPERATOR_NAMESPACE_PERMISSIONS = ("view_namespace", "change_namespace")
SHARE_PERMISSION = "view_memory"


class Action(StrEnum):
    VIEW = "view"
    CHANGE = "change"
    DELETE = "delete"
    SHARE = "share"
    RECLASSIFY = "reclassify"  # change access level or namespace


@dataclass(frozen=True)
class Principal:
    """Who is asking: an agent (with its user) or an operator user."""

    user: object
    agent: Agent | None = None

    @classmethod
    def of(cls, actor) -> Principal:
        if isinstance(actor, Principal):
            return actor
        from agents.models import Agent

        if isinstance(actor, Agent):
            return cls(user=actor.user, agent=actor)
        agent = getattr(actor, "agent", None) if actor is not None else None
        return cls(user=actor, agent=agent)

    @property
    def is_superuser(self) -> bool:
        return bool(getattr(self.user, "is_superuser", False)) and self.agent is None

    @property
    def is_operator(self) -> bool:
        return self.agent is None and bool(getattr(self.user, "is_staff", False) or self.is_superuser)

    @property
    def is_admin_agent(self) -> bool:
        return self.agent is not None and self.agent.is_admin

    @property
    def user_id(self):
        return getattr(self.user, "pk", None)


def can_read_metrics(actor) -> bool:
    """Deployment-wide counts (no content, no names): operators granted `memories.view_metrics`.

    Operators may be scoped to some namespaces, and the counts span all of them; superusers hold
    the permission implicitly. Agents never read them.
    """
    principal = Principal.of(actor)
    return principal.is_operator and principal.user.has_perm("memories.view_metrics")


# --- Namespaces ---------------------------------------------------------------------------

def _namespace_ids_with(user_id, codenames) -> set:
    return set(
        NamespaceUserObjectPermission.objects.filter(
            user_id=user_id, permission__codename__in=codenames
        ).values_list("content_object_id", flat=True)
    )


def member_namespace_ids(agent: Agent) -> set:
    """Namespaces the agent belongs to: its home namespace plus member/admin grants."""
    return {agent.namespace_id} | _namespace_ids_with(agent.user_id, ROLE_PERMISSIONS.values())


def admin_namespace_ids(agent: Agent) -> set:
    return _namespace_ids_with(agent.user_id, [ROLE_PERMISSIONS[Role.ADMIN]])


def readable_namespace_ids(agent: Agent) -> set:
    """Namespaces whose shared memories the agent reads: its own and all their ancestors.

    The rule is the database function the row-level-security policy uses (migration memories/0005),
    so it is written once; one query, which every agent request makes.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT unnest(tmws_readable_namespace_ids(%s))", [agent.pk])
        return {row[0] for row in cursor.fetchall()}


def operator_namespace_ids(user, codenames=OPERATOR_NAMESPACE_PERMISSIONS) -> set:
    """Namespaces a non-superuser operator holds guardian permissions on (and their subtrees)."""
    roots = Namespace.objects.filter(id__in=_namespace_ids_with(user.pk, codenames)).values_list("path", flat=True)
    query = Q(pk__in=[])
    for path in roots:
        query |= Q(path=path) | Q(path__startswith=path + "/")
    return set(Namespace.objects.filter(query).values_list("id", flat=True))


def namespace_visibility_q(actor) -> Q:
    """Namespaces a principal may list: admins and superusers all; agents their own, ancestors and open ones."""
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return Q()
    if principal.agent is not None:
        return Q(id__in=readable_namespace_ids(principal.agent)) | Q(access_policy=AccessPolicy.OPEN)
    if principal.is_operator:
        return Q(id__in=operator_namespace_ids(principal.user))
    return Q(pk__in=[])


def is_member(agent: Agent, namespace: Namespace) -> bool:
    # The home namespace needs no look-up (most writes go there).
    return namespace.pk == agent.namespace_id or namespace.pk in member_namespace_ids(agent)


def is_namespace_admin(actor, namespace: Namespace) -> bool:
    """Namespace admins, admin agents and operators with change rights manage a namespace."""
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return True
    if principal.agent is not None:
        return namespace.pk in admin_namespace_ids(principal.agent)
    if principal.is_operator:
        return namespace.pk in operator_namespace_ids(principal.user, ["change_namespace"])
    return False


def can_manage_agents_in(actor, namespace: Namespace) -> bool:
    """Who registers, changes, retires or re-keys agents whose home is `namespace`."""
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return True
    return principal.is_operator and namespace.pk in operator_namespace_ids(principal.user, ["change_namespace"])


def can_analyse(actor, agent: Agent) -> bool:
    """Who may read an agent's memory insights and file its memories: the agent and whoever manages it."""
    principal = Principal.of(actor)
    return (principal.agent is not None and principal.agent.pk == agent.pk) or can_manage_agents_in(actor, agent.namespace)


def agent_visibility_q(actor) -> Q:
    """Agents a principal may list and read: all of them, for any authenticated agent or user.

    Agents look each other up to share memories and hand over tasks, so the directory is open;
    who may change an agent is `can_manage_agents_in`'s business.
    """
    principal = Principal.of(actor)
    if principal.agent is not None or getattr(principal.user, "is_authenticated", False):
        return Q()
    return Q(pk__in=[])


def can_create_namespace(actor, parent: Namespace | None) -> bool:
    if actor is None:  # management commands act as the system
        return True
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return True
    return parent is not None and is_namespace_admin(principal, parent)


def can_add_member(actor, namespace: Namespace) -> bool:
    """Closed namespaces take members from operators only; invite-only ones also from their admins."""
    principal = Principal.of(actor)
    if namespace.access_policy == AccessPolicy.CLOSED:
        return principal.is_superuser or (
            principal.is_operator and namespace.pk in operator_namespace_ids(principal.user, ["change_namespace"])
        )
    return is_namespace_admin(principal, namespace)


def can_grant_operator_rights(user) -> bool:
    """Only superusers give operators guardian rights on namespaces: such a right is also the right to hand it on."""
    return Principal.of(user).is_superuser


def can_join(agent: Agent, namespace: Namespace) -> bool:
    return namespace.access_policy == AccessPolicy.OPEN


def can_delete_namespace(actor, namespace: Namespace) -> bool:
    principal = Principal.of(actor)
    return principal.is_superuser or principal.is_admin_agent or (
        principal.is_operator and namespace.pk in operator_namespace_ids(principal.user, ["delete_namespace"])
    )


# --- Memories -----------------------------------------------------------------------------

def shared_with_q(agent: Agent) -> Q:
    from memories.models import MemoryUserObjectPermission

    return Q(
        id__in=MemoryUserObjectPermission.objects.filter(
            user_id=agent.user_id, permission__codename=SHARE_PERMISSION
        ).values("content_object_id")
    )


def memory_visibility_q(actor) -> Q:
    """The read rule of ARCHITECTURE section 5, as a filter on Memory."""
    principal = Principal.of(actor)
    if principal.is_superuser:
        return Q()
    if principal.agent is not None:
        agent = principal.agent
        return (
            Q(access_level__in=[AccessLevel.PUBLIC, AccessLevel.SYSTEM])
            | Q(agent_id=agent.pk)
            | Q(access_level=AccessLevel.SHARED, namespace_id__in=readable_namespace_ids(agent))
            | (Q(access_level=AccessLevel.SHARED) & shared_with_q(agent))
        )
    if principal.is_operator:
        return Q(namespace_id__in=operator_namespace_ids(principal.user))
    return Q(pk__in=[])


def can_create_memory(actor, namespace: Namespace, access_level: str) -> tuple[bool, str]:
    """Whether a principal may store a memory of `access_level` in `namespace`, and why not."""
    principal = Principal.of(actor)
    if access_level == AccessLevel.SYSTEM and not (principal.is_operator or principal.is_admin_agent):
        return False, "Only operators and admin agents may create system memories."
    if principal.is_superuser:
        return True, ""
    if principal.agent is not None:
        if access_level == AccessLevel.SYSTEM or is_member(principal.agent, namespace):
            return True, ""
        return False, f"Agent '{principal.agent.agent_id}' is not a member of namespace '{namespace.namespace}'."
    if principal.is_operator and namespace.pk in operator_namespace_ids(principal.user, ["change_namespace"]):
        return True, ""
    return False, f"No right to write into namespace '{namespace.namespace}'."


def can(actor, action: Action | str, memory: Memory) -> bool:
    """Whether a principal may perform `action` on a memory it can already see."""
    principal = Principal.of(actor)
    action = Action(action)
    if principal.is_superuser:
        return True
    if action == Action.VIEW:
        from memories.models import Memory

        return Memory.objects.filter(pk=memory.pk).filter(memory_visibility_q(principal)).exists()
    if principal.agent is not None:
        agent = principal.agent
        if memory.access_level == AccessLevel.SYSTEM:
            return agent.is_admin
        if memory.agent_id == agent.pk:
            return True
        # Namespace admins curate shared memories but may not take them private or out of the namespace.
        if memory.access_level == AccessLevel.SHARED and action != Action.RECLASSIFY:
            return memory.namespace_id in admin_namespace_ids(agent)
        return False
    if principal.is_operator:
        return memory.namespace_id in operator_namespace_ids(principal.user, ["change_namespace"])
    return False


# --- Admin --------------------------------------------------------------------------------

def operator_scope_q(user, field: str = "namespace", codenames=OPERATOR_NAMESPACE_PERMISSIONS) -> Q:
    """Rows of any namespaced model an operator works on in the Django admin.

    Superusers get every row; other operators the rows whose `field` namespace lies in a namespace
    (or its subtree) they hold one of `codenames` on. Rows without a namespace stay superuser-only.
    """
    principal = Principal.of(user)
    if principal.is_superuser:
        return Q()
    if principal.is_operator:
        return Q(**{f"{field}__in": operator_namespace_ids(principal.user, codenames)})
    return Q(pk__in=[])


def operator_can_change_in(user, namespace_id) -> bool:
    """Whether an operator may change objects that live in the namespace `namespace_id`."""
    principal = Principal.of(user)
    if principal.is_superuser:
        return True
    if not principal.is_operator or namespace_id is None:
        return False
    return namespace_id in operator_namespace_ids(principal.user, ["change_namespace"])


# --- Tasks and workflows ------------------------------------------------------------------
# Tasks and workflows live in namespaces like memories do, but carry no access level: whoever
# may read a namespace's shared memories sees its tasks and workflows. Admin agents see and
# manage all of them. Workflow runs can hold what the triggering agent found, so a run is seen
# only by whoever started it and by those who manage the workflow.

def _namespaced_visibility_q(actor, own_fields: tuple[str, ...]) -> Q:
    """Rows of a namespaced model (tasks, workflows) a principal may read.

    Admin agents and superusers read all; agents read rows they are named on in `own_fields`
    and rows of namespaces whose shared memories they read; operators their namespaces' rows.
    """
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return Q()
    if principal.agent is not None:
        agent = principal.agent
        query = Q(namespace_id__in=readable_namespace_ids(agent))
        for field in own_fields:
            query |= Q(**{field: agent.pk})
        return query
    if principal.is_operator:
        return Q(namespace_id__in=operator_namespace_ids(principal.user))
    return Q(pk__in=[])


def task_visibility_q(actor) -> Q:
    """Tasks a principal may read: its own (created or assigned) and those of namespaces it reads."""
    return _namespaced_visibility_q(actor, ("created_by_id", "assigned_agent_id"))


def _manages_namespace_of(principal: Principal, namespace_id) -> bool:
    if principal.is_superuser or principal.is_admin_agent:
        return True
    if principal.agent is not None:
        return namespace_id is not None and namespace_id in admin_namespace_ids(principal.agent)
    if principal.is_operator:
        return namespace_id in operator_namespace_ids(principal.user, ["change_namespace"])
    return False


def can_change_task(actor, task) -> bool:
    """Creator, assignee, admins of the task's namespace, admin agents and operators change a task."""
    principal = Principal.of(actor)
    if principal.agent is not None and principal.agent.pk in (task.created_by_id, task.assigned_agent_id):
        return True
    return _manages_namespace_of(principal, task.namespace_id)


def can_delete_task(actor, task) -> bool:
    """Like can_change_task, except that being assigned a task is no right to delete it."""
    principal = Principal.of(actor)
    if principal.agent is not None and principal.agent.pk == task.created_by_id:
        return True
    return _manages_namespace_of(principal, task.namespace_id)


def can_create_in_namespace(actor, namespace: Namespace) -> tuple[bool, str]:
    """Whether a principal may put a task or workflow into `namespace`, and why not."""
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return True, ""
    if principal.agent is not None:
        if is_member(principal.agent, namespace):
            return True, ""
        return False, f"Agent '{principal.agent.agent_id}' is not a member of namespace '{namespace.namespace}'."
    if principal.is_operator and namespace.pk in operator_namespace_ids(principal.user, ["change_namespace"]):
        return True, ""
    return False, f"No right to write into namespace '{namespace.namespace}'."


def can_be_assigned(agent: Agent, task) -> bool:
    """An agent may be given a task only if it could read the task's namespace anyway."""
    if not agent.is_active:
        return False
    return agent.is_admin or task.namespace_id is None or task.namespace_id in readable_namespace_ids(agent)


def workflow_visibility_q(actor) -> Q:
    """Workflows a principal may read: its own and those of namespaces it reads."""
    return _namespaced_visibility_q(actor, ("created_by_id",))


def can_change_workflow(actor, workflow) -> bool:
    """Creator, admins of the workflow's namespace, admin agents and operators change a workflow."""
    principal = Principal.of(actor)
    if principal.agent is not None and principal.agent.pk == workflow.created_by_id:
        return True
    return _manages_namespace_of(principal, workflow.namespace_id)


def workflow_run_visibility_q(actor) -> Q:
    """Runs a principal may read: those it started and all runs of workflows it manages."""
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return Q()
    if principal.agent is not None:
        agent = principal.agent
        return (
            Q(triggered_by_id=agent.pk)
            | Q(workflow__created_by_id=agent.pk)
            | Q(workflow__namespace_id__in=admin_namespace_ids(agent))
        )
    if principal.is_operator:
        return Q(metadata__triggered_by_user_id=principal.user_id) | Q(
            workflow__namespace_id__in=operator_namespace_ids(principal.user, ["change_namespace"])
        )
    return Q(pk__in=[])


def can_cancel_workflow_run(actor, run) -> bool:
    """Whoever started a run, and whoever manages its workflow, may cancel it."""
    principal = Principal.of(actor)
    if principal.agent is not None and principal.agent.pk == run.triggered_by_id:
        return True
    if principal.agent is None and run.metadata.get("triggered_by_user_id") == principal.user_id:
        return principal.user_id is not None
    return can_change_workflow(principal, run.workflow)
