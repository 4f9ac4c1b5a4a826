"""State changes on agents: registration, updates, retirement and API keys."""
from __future__ import annotations

import math

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

import access
import audit
from access.choices import Role
from core.db import as_service
from core.errors import Conflict, Forbidden, InvalidInput
from namespaces.services import get_agent, get_namespace, set_role  # noqa: F401  (get_agent: agents look agents up here too)

from .contracts import IssueOperatorKey, RegisterAgent, UpdateAgent
from .models import Agent, AgentAccessLevel, ApiKey

USERNAME_PREFIX = "agent:"


def _require_registrar(actor, namespace) -> None:
    if not access.can_manage_agents_in(actor, namespace):
        raise Forbidden(
            f"Only operators with rights on namespace '{namespace.namespace}' and admin agents manage its agents."
        )


def _require_admin_granter(actor) -> None:
    if not access.can_make_admin_agents(actor):
        raise Forbidden("Only superusers and admin agents grant the 'admin' access level.", field="access_level")


def _require_manager(actor, agent: Agent) -> None:
    if not access.can_manage_agent(actor, agent):
        raise Forbidden(
            f"Only operators with rights on namespace '{agent.namespace.namespace}' and admin agents manage "
            "its agents; admin agents are managed by superusers only."
        )


def clean_agent_metadata(actor, given: dict, stored: dict | None = None) -> dict:
    """Agent metadata as given, except that agents never write what the persona-era import records."""
    metadata, refused = access.reserved_metadata(actor, "agent", stored, dict(given))
    if refused:
        raise Forbidden(
            f"metadata.{refused} is recorded by the persona-era import and is read-only for agents.",
            field=f"metadata.{refused}", code="reserved_metadata",
        )
    return metadata


# Configuration keys that operators and admin agents set for an agent, never the agent itself
# (max_in_flight: core.limits).
OPERATOR_CONFIGURATION_KEYS = ("max_in_flight",)
# Numeric keys anyone who may change the configuration sets (weight decay: memories.decay), with their bounds.
NUMERIC_CONFIGURATION_KEYS = {"decay_half_life_days": (0.01, 36_500.0), "decay_floor": (0.0, 10.0)}


def _check_numbers(configuration: dict) -> None:
    for key, (low, high) in NUMERIC_CONFIGURATION_KEYS.items():
        number = configuration.get(key)
        if number is None:
            continue
        if (isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number)
                or not low <= number <= high):
            raise InvalidInput(f"configuration.{key} must be a number from {low:g} to {high:g} (or null: off).",
                               field=f"configuration.{key}")


def _clean_configuration(given: dict, current: dict | None = None, *, by_self: bool = False) -> dict:
    """An agent keeps the operator's keys as they are (a replace carries them over); operators set whole numbers >= 1.

    Who acts decides what is checked, so the check is here rather than in the contract.
    """
    configuration = dict(given)
    current = current or {}
    _check_numbers(configuration)
    for key in OPERATOR_CONFIGURATION_KEYS:
        field = f"configuration.{key}"
        if by_self:
            if key in configuration and configuration[key] != current.get(key):
                raise Forbidden(f"{field} is set by operators; an agent does not change its own.", field=field)
            if key in current:
                configuration = {**configuration, key: current[key]}
        elif configuration.get(key) is not None:
            number = configuration[key]
            if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                raise InvalidInput(f"{field} must be a whole number of at least 1 (or null for the default).",
                                   field=field)
    return configuration


@transaction.atomic
@as_service
def register_agent(actor, data: RegisterAgent) -> tuple[Agent, str]:
    """Create an agent with its permission principal and a first API key; return the key's plaintext."""
    home = get_namespace(data.namespace)
    _require_registrar(actor, home)
    if data.access_level == AgentAccessLevel.ADMIN:
        _require_admin_granter(actor)
    if Agent.objects.filter(agent_id=data.agent_id).exists():
        raise Conflict(f"Agent '{data.agent_id}' already exists.", field="agent_id", code="duplicate")
    user = get_user_model().objects.create(username=f"{USERNAME_PREFIX}{data.agent_id}"[:150])
    user.set_unusable_password()
    user.save(update_fields=["password"])
    agent = Agent.objects.create(
        agent_id=data.agent_id,
        display_name=data.display_name or data.agent_id,
        agent_type=data.agent_type,
        capabilities=dict(data.capabilities),
        configuration=_clean_configuration(data.configuration),
        namespace=home,
        access_level=data.access_level,
        metadata=clean_agent_metadata(actor, data.metadata),
        is_active=data.is_active,
        user=user,
    )
    set_role(agent, home, Role.MEMBER)
    issued, key = ApiKey.issue(user)
    audit.record(actor, audit.AuditAction.AGENT_REGISTER, obj=agent,
                 after={**_audited_state(agent), "key": str(issued)})
    return agent, key


def _audited_state(agent: Agent) -> dict:
    """What the audit trail keeps of an agent's registration (descriptions and configuration: their names only)."""
    return {"agent_id": agent.agent_id, "namespace": agent.namespace.path, "access_level": agent.access_level,
            "is_active": agent.is_active}


def _active_keys(agent: Agent) -> int:
    return ApiKey.objects.filter(user_id=agent.user_id, revoked_at__isnull=True).count()


UPDATABLE_BY_SELF = {"display_name", "capabilities", "configuration", "metadata", "agent_type"}
UPDATABLE_BY_REGISTRAR = UPDATABLE_BY_SELF | {"namespace", "access_level", "is_active"}


@transaction.atomic
@as_service
def update_agent(actor, agent: Agent, data: UpdateAgent) -> Agent:
    """Agents edit their own description and capabilities; operators and admin agents edit the rest (the fields given)."""
    principal = access.Principal.of(actor)
    is_self = principal.agent is not None and principal.agent.pk == agent.pk
    allowed = UPDATABLE_BY_REGISTRAR if access.can_manage_agent(principal, agent) else (
        UPDATABLE_BY_SELF if is_self else set()
    )
    if not allowed:
        raise Forbidden(
            "Only the agent itself, operators whose namespaces hold it and admin agents change an agent; "
            "admin agents are changed by themselves and superusers only."
        )
    changes = data.given()
    refused = sorted(set(changes) - allowed)
    if refused:
        raise Forbidden(f"You may not change {', '.join(refused)}.", field=refused[0])
    before = _audited_state(agent)
    if "capabilities" in changes:
        agent.capabilities = dict(changes["capabilities"])
    if "configuration" in changes:
        agent.configuration = _clean_configuration(changes["configuration"], agent.configuration, by_self=is_self)
    if "metadata" in changes:
        agent.metadata = clean_agent_metadata(principal, changes["metadata"], agent.metadata)
    for field in ("display_name", "agent_type"):
        if field in changes:
            setattr(agent, field, changes[field])
    if "access_level" in changes:
        if changes["access_level"] == AgentAccessLevel.ADMIN and agent.access_level != AgentAccessLevel.ADMIN:
            _require_admin_granter(principal)
        agent.access_level = changes["access_level"]
    if "namespace" in changes:
        agent.namespace = get_namespace(changes["namespace"])
        _require_registrar(principal, agent.namespace)
        set_role(agent, agent.namespace, Role.MEMBER)
    if "is_active" in changes:
        agent.is_active = changes["is_active"]
    agent.save()
    if changes:
        audit.record(principal, audit.AuditAction.AGENT_UPDATE, obj=agent, before=before,
                     after={**_audited_state(agent), "fields": sorted(changes)})
    return agent


def revoke_keys(keys) -> int:
    """Revoke the still-active keys among `keys` (an ApiKey queryset); returns how many."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


@transaction.atomic
@as_service
def retire_agent(actor, agent: Agent) -> None:
    """Deactivate an agent and revoke its keys; its memories stay, owned by it."""
    _require_manager(actor, agent)
    before = {"is_active": agent.is_active, "active_keys": _active_keys(agent)}
    agent.is_active = False
    agent.save(update_fields=["is_active", "updated_at"])
    revoke_keys(ApiKey.objects.filter(user=agent.user))
    audit.record(actor, audit.AuditAction.AGENT_RETIRE, obj=agent, before=before,
                 after={"is_active": False, "active_keys": 0})


@transaction.atomic
@as_service
def rotate_key(actor, agent: Agent) -> str:
    """Revoke every key of the agent and issue a new one, returned in plaintext once.

    Whoever receives the key becomes the agent, so the access module's rule is strict: the agent
    itself, or an operator whose scope holds it (superusers for admin agents).
    """
    if not access.can_rotate_key(actor, agent):
        raise Forbidden(
            "An agent rotates only its own key; operators rotate the keys of agents in their namespaces, "
            "and superusers those of admin agents."
        )
    before = {"active_keys": _active_keys(agent)}
    revoke_keys(ApiKey.objects.filter(user=agent.user))
    issued, key = ApiKey.issue(agent.user)
    audit.record(actor, audit.AuditAction.AGENT_KEY_ROTATE, obj=agent, before=before,
                 after={"active_keys": 1, "key": str(issued)})
    return key


@transaction.atomic
@as_service
def issue_operator_key(user, data: IssueOperatorKey) -> str:
    """A bearer key for an operator's scripts."""
    if getattr(user, "agent", None) is not None:
        raise InvalidInput("That user belongs to an agent; rotate the agent's key instead.")
    issued, key = ApiKey.issue(user, name=data.name)
    # Issued by the deployment itself (manage.py create_operator_key), for `user`.
    audit.record(access.SYSTEM, audit.AuditAction.AGENT_KEY_ISSUE, obj=user, after={"key": str(issued), "name": issued.name})
    return key


@transaction.atomic
@as_service
def revoke_api_keys(actor, keys) -> int:
    """Revoke the still-active keys among `keys` (an ApiKey queryset the caller may change), recording each."""
    revoked = list(keys.filter(revoked_at__isnull=True).select_related("user__agent"))
    count = revoke_keys(ApiKey.objects.filter(pk__in=[key.pk for key in revoked]))
    for key in revoked:
        agent = getattr(key.user, "agent", None)
        audit.record(actor, audit.AuditAction.AGENT_KEY_REVOKE, obj=agent if agent is not None else key.user,
                     before={"key": str(key), "name": key.name}, after={"revoked": True})
    return count
