"""Per-request database context for row-level security on `memories`.

Agent requests run inside a transaction as the non-superuser role `TMWS_AGENT_DB_ROLE` with
`app.current_agent_id` set, so the RLS policy filters rows even if an ORM filter is forgotten.
Both settings are transaction-local (`SET LOCAL` / `set_config(..., true)`).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import DatabaseError, connection, transaction

# The agent whose RLS context this thread's transaction is in (mirrors app.current_agent_id, saving a query).
_context_agent_id: ContextVar[str] = ContextVar("tmws_context_agent_id", default="")
# Whether a `service_role` block is open in this thread: an inner one then changes nothing, so leaving it does
# not put the outer block back under the agent role.
_in_service_role: ContextVar[bool] = ContextVar("tmws_in_service_role", default=False)


def agent_role() -> str:
    return getattr(settings, "TMWS_AGENT_DB_ROLE", "tmws_agent")


def enter_agent_context(agent) -> None:
    """Switch the current transaction to the agent role and name the agent for the RLS policy."""
    if not connection.in_atomic_block:
        raise RuntimeError("enter_agent_context() needs an open transaction.")
    with connection.cursor() as cursor:
        # One round trip: set_config('role', ..., true) is SET LOCAL ROLE.
        cursor.execute(
            "SELECT set_config('role', %s, true), set_config('app.current_agent_id', %s, true)",
            [agent_role(), str(agent.pk)],
        )
    _context_agent_id.set(str(agent.pk))


def leave_agent_context() -> None:
    """Return to the connection's own role, for work after the agent's part of the request."""
    _context_agent_id.set("")
    if connection.connection is None or connection.needs_rollback:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('role', 'none', true), set_config('app.current_agent_id', '', true)")


@contextmanager
def agent_context(agent):
    """Run a block as `agent` in its own transaction (used by MCP tools and scripts)."""
    with transaction.atomic():
        if agent is None:
            yield
            return
        enter_agent_context(agent)
        try:
            yield
        finally:
            leave_agent_context()


def current_agent_id() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.current_agent_id', true)")
        return cursor.fetchone()[0] or ""


@contextmanager
def agent_search_context(agent):
    """Make sure a block runs in `agent`'s RLS context (entering it only if the caller has not).

    Yields whether the block runs under row-level security (true for any agent).
    """
    if agent is None or current_agent_id() == str(agent.pk):
        yield agent is not None
        return
    enter_agent_context(agent)
    try:
        yield True
    finally:
        leave_agent_context()


@contextmanager
def service_role():
    """Briefly step out of the agent role for service-level reads (e.g. planner statistics).

    pg_stats hides tables under active row-level security, so lexeme statistics are read as the
    connection's own role; nothing read here is returned to the agent. Blocks nest: only the outermost
    steps out and back.
    """
    if _in_service_role.get():
        yield
        return
    agent_id = current_agent_id()
    if not agent_id:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    token = _in_service_role.set(True)
    try:
        yield
    except DatabaseError:
        # The transaction is aborted and no statement runs until its rollback, which also undoes
        # the RESET ROLE above when the block ran inside a savepoint (every service is atomic).
        raise
    except BaseException:
        _restore_agent_role()
        raise
    else:
        _restore_agent_role()
    finally:
        _in_service_role.reset(token)


def _restore_agent_role() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'SET LOCAL ROLE "{agent_role()}"')


def as_service(function):
    """Run a service function's writes as the connection's own role, also inside an agent request.

    For writes the agent role holds no grant for (agents, their users and keys) or that RLS's write
    rule would refuse on purpose (a reader's feedback on an owner's memory): the service has already
    decided, through access, that the caller may make them. Needs an open transaction.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with service_role():
            return function(*args, **kwargs)

    return wrapper


@contextmanager
def change_noted(principal, change: str | None = None):
    """Name, for the history triggers, who makes the block's changes and (optionally) their kind.

    An agent inside its own row-level-security context is named by it already (no query); an agent
    outside it (a script, a job) and an operator are named here. The settings are transaction-local
    and cleared after the block. Needs an open transaction.
    """
    values = {}
    if principal.agent is not None and _context_agent_id.get() != str(principal.agent.pk):
        values["app.change_agent_id"] = str(principal.agent.pk)
    elif principal.agent is None and principal.user_id is not None:
        values["app.change_user_id"] = str(principal.user_id)
    if change:
        values["app.memory_change"] = change
    if not values:
        yield
        return
    _set_local(values)
    try:
        yield
    finally:
        if not connection.needs_rollback:
            _set_local(dict.fromkeys(values, ""))


def _set_local(values: dict[str, str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join("set_config(%s, %s, true)" for _ in values),
                       [item for pair in values.items() for item in pair])
