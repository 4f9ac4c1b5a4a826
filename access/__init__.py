"""The one access module: every read and write path asks it who may see or change what.

Principals are agents (authenticated by API key) and operators (Django users without an
agent). Superusers see and change everything. The same visibility rule is repeated in SQL
by the row-level-security policy on `memories` (migrations namespaces/0002, memories/0005) as
defence in depth; keep the two in step. Both take an agent's readable namespaces from the
database function `tmws_readable_namespace_ids`.
"""
from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from django.apps import apps
from django.db import connection
from django.db.models import Q
from django.db.models.signals import post_delete, post_save

from core.principal import SYSTEM as SYSTEM  # callers name the system principal through access
from core.principal import Principal, forget_namespace_sets
from core.principal import request_scope as request_scope  # callers open the scope through access

from .choices import ROLE_PERMISSIONS, AccessLevel, AccessPolicy, Role

if TYPE_CHECKING:
    from namespaces.models import Namespace



# This module sits below the apps it rules on: it imports none of their models (it names them by
# label through `apps.get_model`) and takes agents, memories, runs and users as plain objects.

OPERATOR_NAMESPACE_PERMISSIONS = ("view_namespace", "change_namespace")
SHARE_PERMISSION = "view_memory"


class Action(StrEnum):
    VIEW = "view"
    CHANGE = "change"
    DELETE = "delete"
    SHARE = "share"
    RECLASSIFY = "reclassify"  # change access level or namespace


def _model(label: str):
    return apps.get_model(label)


for _sender in ("namespaces.NamespaceUserObjectPermission", "namespaces.Namespace", "memories.MemoryUserObjectPermission"):
    _name = _sender.rsplit(".", 1)[1]
    post_save.connect(forget_namespace_sets, sender=_sender, dispatch_uid=f"access-forget-{_name}-save")
    post_delete.connect(forget_namespace_sets, sender=_sender, dispatch_uid=f"access-forget-{_name}-del")


def can_read_metrics(actor) -> bool:
    """Deployment-wide counts (no content, no names): operators granted `memories.view_metrics`.

    Operators may be scoped to some namespaces, and the counts span all of them; superusers hold
    the permission implicitly. Agents never read them.
    """
    principal = Principal.of(actor)
    return principal.system or (principal.is_operator and principal.user.has_perm("memories.view_metrics"))


# --- Namespaces ---------------------------------------------------------------------------

def _namespace_ids_with(user_id, codenames) -> set:
    return set(
        _model("namespaces.NamespaceUserObjectPermission").objects.filter(
            user_id=user_id, permission__codename__in=codenames
        ).values_list("content_object_id", flat=True)
    )


def _agent_principal(actor) -> Principal:
    principal = Principal.of(actor)
    if principal.agent is None:
        raise ValueError("An agent is needed here.")
    return principal


def member_namespace_ids(actor) -> frozenset:
    """Namespaces the agent belongs to: its home namespace plus member/admin grants."""
    principal = _agent_principal(actor)
    agent = principal.agent
    return principal.namespace_set(
        "member", lambda: {agent.namespace_id} | _namespace_ids_with(agent.user_id, ROLE_PERMISSIONS.values())
    )


def admin_namespace_ids(actor) -> frozenset:
    principal = _agent_principal(actor)
    return principal.namespace_set(
        "admin", lambda: _namespace_ids_with(principal.agent.user_id, [ROLE_PERMISSIONS[Role.ADMIN]])
    )


def readable_namespace_ids(actor) -> frozenset:
    """Namespaces whose shared memories the agent reads: its own and all their ancestors.

    The rule is the database function the row-level-security policy uses (migration memories/0005),
    so it is written once; read with the agent's shares (`shared_memory_ids`), one query per request.
    """
    return _read_scope(_agent_principal(actor))[0]


def shared_memory_ids(actor) -> frozenset | None:
    """Memories shared with the agent one by one, or None when there are too many to name in a query."""
    return _read_scope(_agent_principal(actor))[1]


# An agent's shares are named in its queries, so the planner reads every arm of the read rule
# from an index; past this many a subquery names them instead (one hashed look-up per row).
MAX_NAMED_SHARES = 500

# The readable namespaces and the agent's shares (at most one more than may be named), in one round trip.
READ_SCOPE_SQL = """
SELECT 'namespace', namespace_id
  FROM unnest(tmws_readable_namespace_ids(%s)) namespace_id
UNION ALL
SELECT 'memory', shares.content_object_id
  FROM ({shares}) shares
"""


def _share_grants(principal: Principal):
    """The ids of the memories shared with the agent one by one, as a query (the one place of that rule)."""
    grants = _model("memories.MemoryUserObjectPermission").objects
    return grants.filter(user_id=principal.agent.user_id, permission__codename=SHARE_PERMISSION).values(
        "content_object_id"
    )


def _read_scope(principal: Principal) -> tuple[frozenset, frozenset | None]:
    def compute() -> tuple[frozenset, frozenset | None]:
        shares_sql, shares_params = _share_grants(principal).order_by()[: MAX_NAMED_SHARES + 1].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(READ_SCOPE_SQL.format(shares=shares_sql), [principal.agent.pk, *shares_params])
            rows = cursor.fetchall()
        shares = frozenset(value for kind, value in rows if kind == "memory")
        return (frozenset(value for kind, value in rows if kind == "namespace"),
                shares if len(shares) <= MAX_NAMED_SHARES else None)

    return principal.remember("read_scope", compute)


def operator_namespace_ids(actor, codenames=OPERATOR_NAMESPACE_PERMISSIONS) -> frozenset:
    """Namespaces a non-superuser operator holds guardian permissions on (and their subtrees)."""
    principal = Principal.of(actor)
    codenames = tuple(sorted(codenames))

    def compute() -> set:
        granted = _namespace_ids_with(principal.user_id, codenames)
        roots = _model("namespaces.Namespace").objects.filter(id__in=granted).values_list("path", flat=True)
        query = Q(pk__in=[])
        for path in roots:
            query |= Q(path=path) | Q(path__startswith=path + "/")
        return set(_model("namespaces.Namespace").objects.filter(query).values_list("id", flat=True))

    return principal.namespace_set("operator:" + ",".join(codenames), compute)


def _operator_changes(principal: Principal, namespace_id) -> bool:
    """A non-agent operator holding `change_namespace` on the namespace or an ancestor (superusers always)."""
    if principal.is_superuser:
        return True
    return principal.is_operator and namespace_id is not None and namespace_id in operator_namespace_ids(
        principal, ["change_namespace"]
    )


def namespace_visibility_q(actor) -> Q:
    """Namespaces a principal may list: admins and superusers all; agents their own, ancestors and open ones."""
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return Q()
    if principal.agent is not None:
        return Q(id__in=readable_namespace_ids(principal)) | Q(access_policy=AccessPolicy.OPEN)
    if principal.is_operator:
        return Q(id__in=operator_namespace_ids(principal))
    return Q(pk__in=[])


def is_member(actor, namespace: Namespace) -> bool:
    # The home namespace needs no look-up (most writes go there).
    principal = _agent_principal(actor)
    return namespace.pk == principal.agent.namespace_id or namespace.pk in member_namespace_ids(principal)


def is_namespace_admin(actor, namespace: Namespace) -> bool:
    """Namespace admins, admin agents and operators with change rights manage a namespace."""
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return True
    if principal.agent is not None:
        return namespace.pk in admin_namespace_ids(principal)
    return _operator_changes(principal, namespace.pk)


# --- Closed subtrees --------------------------------------------------------------------------
# Shared memories flow down the tree, so a namespace below a closed one reads the closed one's
# shared memories. A descendant is therefore never more open than its closest closed ancestor
# (it is closed too), and only operators whose scope holds that ancestor create or move
# namespaces below it; self-joins follow the effective (closest closed) policy.

def closest_closed_ancestor(namespace: Namespace | None) -> Namespace | None:
    """The nearest closed namespace among `namespace` and its ancestors, or None."""
    if namespace is None:
        return None
    if namespace.access_policy == AccessPolicy.CLOSED:
        return namespace
    paths = namespace.ancestor_paths()
    if not paths:
        return None
    closed = _model("namespaces.Namespace").objects.filter(path__in=paths, access_policy=AccessPolicy.CLOSED)
    return closed.order_by("-depth").first()


def effective_policy(namespace: Namespace) -> str:
    """The policy that holds: closed when the namespace or an ancestor is closed, else its own."""
    return AccessPolicy.CLOSED if closest_closed_ancestor(namespace) is not None else namespace.access_policy


def policy_allowed_below(parent: Namespace | None, policy: str) -> bool:
    """Whether a namespace of `policy` may sit below `parent` (nothing below a closed one but closed ones)."""
    return policy == AccessPolicy.CLOSED or closest_closed_ancestor(parent) is None


def can_create_namespace(actor, parent: Namespace | None) -> bool:
    """Who creates a namespace under `parent` (or moves one there); None is the root."""
    principal = Principal.of(actor)
    if principal.is_superuser:
        return True
    closed = closest_closed_ancestor(parent)
    if closed is not None:
        return _operator_changes(principal, closed.pk)
    if principal.is_admin_agent:
        return True
    return parent is not None and is_namespace_admin(principal, parent)


def can_add_member(actor, namespace: Namespace) -> bool:
    """Closed namespaces (and those below one) take members from operators only; invite-only ones also from admins."""
    principal = Principal.of(actor)
    closed = closest_closed_ancestor(namespace)
    if closed is not None:
        return _operator_changes(principal, closed.pk) if principal.agent is None else False
    return is_namespace_admin(principal, namespace)


def can_remove_member(actor, namespace: Namespace, agent) -> bool:
    """An agent leaves a namespace itself; otherwise whoever may add members removes them."""
    return Principal.of(actor).is_agent(agent) or can_add_member(actor, namespace)


def administers_what_it_creates(actor):
    """The agent that becomes admin of a namespace it creates (admin agents hold every right already), or None."""
    principal = Principal.of(actor)
    return principal.agent if principal.agent is not None and not principal.agent.is_admin else None


def can_grant_operator_rights(user) -> bool:
    """Only superusers give operators guardian rights on namespaces: such a right is also the right to hand it on."""
    return Principal.of(user).is_superuser


def can_join(agent, namespace: Namespace) -> bool:
    return effective_policy(namespace) == AccessPolicy.OPEN


def can_delete_namespace(actor, namespace: Namespace) -> bool:
    principal = Principal.of(actor)
    return principal.is_superuser or principal.is_admin_agent or (
        principal.is_operator and namespace.pk in operator_namespace_ids(principal, ["delete_namespace"])
    )


# --- Agents -----------------------------------------------------------------------------------
# Managing an agent (changing its home, access level or activity, retiring it) and re-keying it
# never hand anyone rights they do not hold: a key is the agent's identity, so only the agent
# itself and operators whose scope holds the agent's home namespace receive a new one; admin
# agents are managed and re-keyed by superusers only.

def can_manage_agents_in(actor, namespace: Namespace) -> bool:
    """Who registers agents whose home is `namespace`: operators with rights on it and admin agents."""
    principal = Principal.of(actor)
    return principal.is_admin_agent or _operator_changes(principal, namespace.pk)


def can_manage_agent(actor, agent) -> bool:
    """Who changes an existing agent's registration or retires it."""
    principal = Principal.of(actor)
    if principal.is_superuser:
        return True
    if agent.is_admin:
        return False
    return can_manage_agents_in(principal, agent.namespace)


def can_purge_agent(actor, agent) -> bool:
    """Who erases an agent for good: operators who manage it (superusers for admin agents); never an agent."""
    principal = Principal.of(actor)
    return principal.agent is None and (principal.is_superuser or principal.is_operator) and can_manage_agent(
        principal, agent)


def can_make_admin_agents(actor) -> bool:
    """Who grants an agent the 'admin' access level: superusers and admin agents."""
    principal = Principal.of(actor)
    return principal.is_superuser or principal.is_admin_agent


def can_rotate_key(actor, agent) -> bool:
    """The agent itself, and operators whose scope holds it (admin agents: superusers); never another agent."""
    principal = Principal.of(actor)
    if principal.is_agent(agent) or principal.is_superuser:
        return True
    if principal.agent is not None or agent.is_admin:
        return False
    return _operator_changes(principal, agent.namespace_id)


def can_store_for(actor, agent) -> bool:
    """Whether an operator may store a memory owned by `agent`: only for agents it manages."""
    principal = Principal.of(actor)
    if principal.is_agent(agent):
        return True
    return principal.agent is None and can_manage_agent(principal, agent)


def can_analyse(actor, agent) -> bool:
    """Who may read an agent's memory insights and file its memories: the agent and whoever manages it.

    What they then see is narrowed by `learning_memories_q`.
    """
    principal = Principal.of(actor)
    return principal.is_agent(agent) or can_manage_agents_in(principal, agent.namespace)


def agent_visibility_q(actor) -> Q:
    """Agents a principal may list and read: all of them, for any authenticated agent or user.

    Agents look each other up to share memories and hand over tasks, so the directory is open;
    who may change an agent is `can_manage_agent`'s business.
    """
    principal = Principal.of(actor)
    if principal.agent is not None or getattr(principal.user, "is_authenticated", False):
        return Q()
    return Q(pk__in=[])


# --- Reserved metadata ------------------------------------------------------------------------
# The importer and the data migration record what came from the persona era under these keys.
# Agents never write them (on create, update or bulk, through API v2, v1 or MCP); an update
# that leaves them out keeps the stored value.

RESERVED_METADATA_KEYS = {"agent": ("persona",), "memory": ("legacy",), "task": ("legacy",), "workflow": ("legacy",)}


def reserved_metadata(actor, kind: str, stored: dict | None, given: dict) -> tuple[dict, str | None]:
    """The metadata to store for `given`, and the first reserved key the caller may not write (or None).

    Operators write every key (imports and repairs are theirs); agents get the stored values of
    the reserved keys back, and a refusal when they try to set a different one.
    """
    principal = Principal.of(actor)
    if principal.agent is None:
        return given, None
    stored = stored if isinstance(stored, dict) else {}
    result = dict(given)
    for key in RESERVED_METADATA_KEYS[kind]:
        if key in given and (key not in stored or given[key] != stored[key]):
            return given, key
        if key in stored:
            result[key] = stored[key]
    return result, None


# --- Memories -----------------------------------------------------------------------------

def shared_with_q(actor, field: str = "id") -> Q:
    """The memories (or, by `field`, rows of a memory) shared with the agent one by one (access level aside)."""
    principal = _agent_principal(actor)
    named = shared_memory_ids(principal)
    return Q(**{f"{field}__in": named if named is not None else _share_grants(principal)})


def memory_visibility_q(actor) -> Q:
    """The read rule of ARCHITECTURE section 5, as a filter on Memory."""
    return _read_rule_q(actor, "id")


def memory_version_visibility_q(actor) -> Q:
    """The read rule applied to the state a MemoryVersion records: a version is read by whoever could read the
    memory while it was current (a private past stays the owner's); shares are the memory's own."""
    return _read_rule_q(actor, "memory_id")


def _read_rule_q(actor, memory_field: str) -> Q:
    """The read rule on rows holding access_level, agent_id and namespace_id, the memory being `memory_field`."""
    principal = Principal.of(actor)
    if principal.is_superuser:
        return Q()
    if principal.agent is not None:
        # The owner first: PostgreSQL tests an OR's branches in order, and own rows then pass on one comparison.
        return (
            Q(agent_id=principal.agent.pk)
            | Q(access_level__in=[AccessLevel.PUBLIC, AccessLevel.SYSTEM])
            | Q(access_level=AccessLevel.SHARED, namespace_id__in=readable_namespace_ids(principal))
            | (Q(access_level=AccessLevel.SHARED) & shared_with_q(principal, memory_field))
        )
    if principal.is_operator:
        return Q(namespace_id__in=operator_namespace_ids(principal))
    return Q(pk__in=[])


def memory_export_q(actor) -> Q:
    """The memories a principal exports (GET /api/v2/memories/export, `manage.py export_memories`).

    An export carries a memory's shares and its history along with it, so it is the business of whoever keeps
    the memory: agents export the memories they own (never one merely shared with them), operators the
    memories of their namespaces (superusers and the system: all). Expired memories are left out by the caller.
    """
    principal = Principal.of(actor)
    if principal.is_superuser:
        return Q()
    if principal.agent is not None:
        return Q(agent_id=principal.agent.pk)
    if principal.is_operator:
        return Q(namespace_id__in=operator_namespace_ids(principal))
    return Q(pk__in=[])


def can_export_agent(actor, agent) -> bool:
    """Whether a principal may ask for the export of `agent`'s memories: the agent itself, and operators."""
    principal = Principal.of(actor)
    return principal.is_agent(agent) or principal.is_operator


def memory_change_q(actor) -> Q:
    """The write rule of `can(actor, CHANGE, memory)` as a filter on Memory (for bulk changes)."""
    principal = Principal.of(actor)
    if principal.is_superuser:
        return Q()
    if principal.agent is not None:
        agent = principal.agent
        query = (Q(agent_id=agent.pk) & ~Q(access_level=AccessLevel.SYSTEM)) | Q(
            access_level=AccessLevel.SHARED, namespace_id__in=admin_namespace_ids(principal)
        )
        return query | Q(access_level=AccessLevel.SYSTEM) if agent.is_admin else query
    if principal.is_operator:
        return Q(namespace_id__in=operator_namespace_ids(principal, ["change_namespace"]))
    return Q(pk__in=[])


def learning_memories_q(actor, agent, action: Action | str = Action.VIEW) -> Q:
    """The memories of `agent` a learning job run by `actor` reads (VIEW) or files (CHANGE).

    The job looks at the agent's own memories, and only at those the caller itself may read or
    change: an operator's scope or an admin agent's reach bounds what it learns about another agent.
    """
    principal = Principal.of(actor)
    own = Q(agent_id=agent.pk)
    if principal.is_agent(agent):
        return own
    rule = memory_change_q(principal) if Action(action) == Action.CHANGE else memory_visibility_q(principal)
    return own & rule


def can_create_memory(actor, namespace: Namespace, access_level: str) -> tuple[bool, str]:
    """Whether a principal may store a memory of `access_level` in `namespace`, and why not."""
    principal = Principal.of(actor)
    if access_level == AccessLevel.SYSTEM and not (principal.is_operator or principal.is_admin_agent):
        return False, "Only operators and admin agents may create system memories."
    if principal.is_superuser:
        return True, ""
    if principal.agent is not None:
        if access_level == AccessLevel.SYSTEM or is_member(principal, namespace):
            return True, ""
        return False, f"Agent '{principal.agent.agent_id}' is not a member of namespace '{namespace.namespace}'."
    if _operator_changes(principal, namespace.pk):
        return True, ""
    return False, f"No right to write into namespace '{namespace.namespace}'."


def can(actor, action: Action | str, memory) -> bool:
    """Whether a principal may perform `action` on a memory it can already see."""
    principal = Principal.of(actor)
    action = Action(action)
    if principal.is_superuser:
        return True
    if action == Action.VIEW:
        memories = _model("memories.Memory").objects
        return memories.filter(pk=memory.pk).filter(memory_visibility_q(principal)).exists()
    if principal.agent is not None:
        agent = principal.agent
        if memory.access_level == AccessLevel.SYSTEM:
            return agent.is_admin
        if memory.agent_id == agent.pk:
            return True
        # Namespace admins curate shared memories but may not take them private or out of the namespace.
        if memory.access_level == AccessLevel.SHARED and action != Action.RECLASSIFY:
            return memory.namespace_id in admin_namespace_ids(principal)
        return False
    return _operator_changes(principal, memory.namespace_id)


def can_see_readers(actor, memory) -> bool:
    """Who learns which other agents may read a memory (access.explain.readers): its owner and operators."""
    principal = Principal.of(actor)
    return principal.agent is None or memory.agent_id == principal.agent.pk


ACCESS_BREADTH = (AccessLevel.PRIVATE, AccessLevel.SHARED, AccessLevel.PUBLIC, AccessLevel.SYSTEM)


def can_merge(actor, memories) -> bool:
    """A merge changes every memory of its group (it retires them): the actor must be able to change each."""
    return all(can(actor, Action.CHANGE, memory) for memory in memories)


def widest_grantable_level(actor, namespace: Namespace, levels) -> str | None:
    """The widest of `levels`, or narrower, that the actor may give a memory in `namespace` (None: not even private)."""
    widest = max(ACCESS_BREADTH.index(level) for level in levels)
    for level in reversed(ACCESS_BREADTH[:widest + 1]):
        if can_create_memory(actor, namespace, level)[0]:
            return level
    return None


# --- Admin and probes ---------------------------------------------------------------------

def operator_scope_q(user, field: str = "namespace", codenames=OPERATOR_NAMESPACE_PERMISSIONS) -> Q:
    """Rows of any namespaced model an operator works on in the Django admin.

    Superusers get every row; other operators the rows whose `field` namespace lies in a namespace
    (or its subtree) they hold one of `codenames` on. Rows without a namespace stay superuser-only.
    """
    principal = Principal.of(user)
    if principal.is_superuser:
        return Q()
    if principal.is_operator:
        return Q(**{f"{field}__in": operator_namespace_ids(principal, codenames)})
    return Q(pk__in=[])


def operator_can_change_in(user, namespace_id) -> bool:
    """Whether an operator may change objects that live in the namespace `namespace_id`."""
    principal = Principal.of(user)
    return principal.agent is None and _operator_changes(principal, namespace_id)


def can_read_probe_details(user) -> bool:
    """Why a readiness probe fails (exception text, hosts) is for operators, not anonymous callers."""
    principal = Principal.of(user)
    return principal.is_operator and bool(getattr(principal.user, "is_active", False))


# --- Tasks and workflows ------------------------------------------------------------------
# Tasks and workflows live in namespaces like memories do, but carry no access level: whoever
# may read a namespace's shared memories sees its tasks and workflows. Admin agents see and
# manage all of them. Workflow runs can hold what the triggering agent found, so a run is seen
# only by whoever started it and by those who manage the workflow, and its outputs (the run's
# and every step's) only by whoever started it (and superusers).

def _namespaced_visibility_q(actor, own_fields: tuple[str, ...]) -> Q:
    """Rows of a namespaced model (tasks, workflows) a principal may read.

    Admin agents and superusers read all; agents read rows they are named on in `own_fields`
    and rows of namespaces whose shared memories they read; operators their namespaces' rows.
    """
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return Q()
    if principal.agent is not None:
        query = Q(namespace_id__in=readable_namespace_ids(principal))
        for name in own_fields:
            query |= Q(**{name: principal.agent.pk})
        return query
    if principal.is_operator:
        return Q(namespace_id__in=operator_namespace_ids(principal))
    return Q(pk__in=[])


def task_visibility_q(actor) -> Q:
    """Tasks a principal may read: its own (created or assigned) and those of namespaces it reads."""
    return _namespaced_visibility_q(actor, ("created_by_id", "assigned_agent_id"))


def _manages_namespace_of(principal: Principal, namespace_id) -> bool:
    if principal.is_superuser or principal.is_admin_agent:
        return True
    if principal.agent is not None:
        return namespace_id is not None and namespace_id in admin_namespace_ids(principal)
    return _operator_changes(principal, namespace_id)


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
        if is_member(principal, namespace):
            return True, ""
        return False, f"Agent '{principal.agent.agent_id}' is not a member of namespace '{namespace.namespace}'."
    if _operator_changes(principal, namespace.pk):
        return True, ""
    return False, f"No right to write into namespace '{namespace.namespace}'."


def can_be_assigned(agent, task) -> bool:
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
    """Runs a principal may read: those it started and all runs of workflows it manages.

    The API and the admin both narrow runs with this filter.
    """
    principal = Principal.of(actor)
    if principal.is_superuser or principal.is_admin_agent:
        return Q()
    if principal.agent is not None:
        agent = principal.agent
        return (
            Q(triggered_by_id=agent.pk)
            | Q(workflow__created_by_id=agent.pk)
            | Q(workflow__namespace_id__in=admin_namespace_ids(principal))
        )
    if principal.is_operator:
        return Q(metadata__triggered_by_user_id=principal.user_id) | Q(
            workflow__namespace_id__in=operator_namespace_ids(principal, ["change_namespace"])
        )
    return Q(pk__in=[])


def started_run(actor, run) -> bool:
    """Whether `actor` is whoever started the run (an agent, or an operator user)."""
    principal = Principal.of(actor)
    if principal.agent is not None:
        return principal.agent.pk == run.triggered_by_id
    return principal.user_id is not None and run.metadata.get("triggered_by_user_id") == principal.user_id


def can_read_run_outputs(actor, run) -> bool:
    """A run's outputs hold what the runner's rights found: only the runner (and superusers) read them."""
    principal = Principal.of(actor)
    return principal.is_superuser or started_run(principal, run)


def can_cancel_workflow_run(actor, run) -> bool:
    """Whoever started a run, and whoever manages its workflow, may cancel it."""
    principal = Principal.of(actor)
    return started_run(principal, run) or can_change_workflow(principal, run.workflow)


def can_see_operator_names(actor) -> bool:
    """Who learns which operator made a change (in a memory's history): operators; agents read "operator"."""
    return Principal.of(actor).is_operator


def can_run_workflows(actor) -> bool:
    """Agents and operators start workflow runs (of workflows they can see)."""
    principal = Principal.of(actor)
    return principal.agent is not None or principal.is_operator


# --- Audit trail ------------------------------------------------------------------------------
# The trail records who changed shares, memberships, roles, keys, agents, namespaces and admin objects.
# It is read by operators only: an operator reads the entries of the namespaces (and their subtrees) it
# holds rights on, a superuser every entry; entries outside any namespace (an operator's own keys, users
# and groups changed in the admin) are superuser-only. Agents never read it, not even about themselves.

def can_read_audit(actor) -> bool:
    """Operators read the audit trail (what they see is narrowed by `audit_visibility_q`); agents never."""
    return Principal.of(actor).is_operator


def audit_visibility_q(actor) -> Q:
    """The audit entries a principal may read, as a filter on AuditEntry (its `namespace_id`)."""
    principal = Principal.of(actor)
    if principal.is_superuser:
        return Q()
    if principal.is_operator:
        return Q(namespace_id__in=operator_namespace_ids(principal))
    return Q(pk__in=[])


# --- Statistics -------------------------------------------------------------------------------

def statistics_namespace_ids(actor) -> list | None:
    """The namespaces whose keyword statistics an operator's search sums: None for all (superusers, and agents,
    whose statistics the database narrows itself), the operator's scope otherwise, none for anyone else."""
    principal = Principal.of(actor)
    if principal.agent is not None or principal.is_superuser:
        return None
    if principal.is_operator:
        return list(operator_namespace_ids(principal.user))
    return []
