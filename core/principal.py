"""Who is asking: an agent (with its user) or an operator user, resolved once per request.

A principal's namespace sets (member, admin, readable, operator scope) cost a query each. They are
computed once per principal and request: `request_scope` opens a registry of the request's
principals, `Principal.of` hands out the one registered for an actor, and the registry dies with the
request. Any write to memberships, operator rights, memory shares or the tree calls
`forget_namespace_sets` (the access rules connect it), so sets computed before it are computed again.
The rules that use these sets live in `access`; this module holds none.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


def _label(obj) -> str | None:
    meta = getattr(obj, "_meta", None)
    return getattr(meta, "label", None)


def _is_agent(obj) -> bool:
    return _label(obj) == "agents.Agent"


_REQUEST_PRINCIPALS: ContextVar[dict | None] = ContextVar("tmws_request_principals", default=None)
_GENERATION = [0]


@contextmanager
def request_scope() -> Iterator[None]:
    """Principals resolved inside share their namespace sets; nothing outlives the block."""
    token = _REQUEST_PRINCIPALS.set({})
    try:
        yield
    finally:
        _REQUEST_PRINCIPALS.reset(token)


def forget_namespace_sets(*args, **kwargs) -> None:
    """Memberships, operator rights, shares or the tree changed: every cached set is stale."""
    _GENERATION[0] += 1


@dataclass(frozen=True)
class Principal:
    """Who is asking: an agent (with its user), an operator user, or SYSTEM (the deployment itself)."""

    user: object
    agent: object | None = None
    system: bool = False
    _sets: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    @classmethod
    def of(cls, actor) -> Principal:
        if isinstance(actor, Principal):
            return actor
        registry = _REQUEST_PRINCIPALS.get()
        key = (_label(actor), getattr(actor, "pk", None))
        if registry is not None and key[1] is not None and key in registry:
            return registry[key]
        if _is_agent(actor):
            principal = cls(user=actor.user, agent=actor)
        else:
            agent = getattr(actor, "agent", None) if actor is not None else None
            principal = cls(user=actor, agent=agent)
        if registry is not None and key[1] is not None:
            registry[key] = principal
            if principal.agent is not None:  # the agent and its user are one principal
                registry[(_label(principal.agent), principal.agent.pk)] = principal
                registry[(_label(principal.user), principal.user_id)] = principal
        return principal

    def namespace_set(self, name: str, compute: Callable[[], set]) -> frozenset:
        """`compute()` as a frozenset, remembered for this principal until memberships or the tree change."""
        return self.remember(name, lambda: frozenset(compute()))

    def remember(self, name: str, compute: Callable[[], object]):
        """`compute()`, remembered for this principal until memberships, shares or the tree change."""
        entry = self._sets.get(name)
        if entry is None or entry[0] != _GENERATION[0]:
            generation = _GENERATION[0]
            entry = (generation, compute())
            self._sets[name] = entry
        return entry[1]

    @property
    def is_superuser(self) -> bool:
        """Every right: superusers, and SYSTEM."""
        return self.system or (bool(getattr(self.user, "is_superuser", False)) and self.agent is None)

    @property
    def is_operator(self) -> bool:
        return self.agent is None and bool(getattr(self.user, "is_staff", False) or self.is_superuser)

    @property
    def is_admin_agent(self) -> bool:
        return self.agent is not None and self.agent.is_admin

    @property
    def user_id(self):
        return getattr(self.user, "pk", None)

    def is_agent(self, agent) -> bool:
        return self.agent is not None and agent is not None and self.agent.pk == agent.pk


# The deployment itself: management commands, imports and validations act as it, with every right.
# It is named, never implied: a missing actor (None) is a principal without any right.
SYSTEM = Principal(user=None, system=True)
