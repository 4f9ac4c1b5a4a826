"""Exact query counts of the MCP list tools: the same fixed number for a few rows and for more.

Each tool runs in this process through `_call_as_agent`, the function the server runs for every
tool call over stdio and HTTP (the transports add no queries of their own but would run the
tool in another process or thread, out of the reach of the count). The rows are made the way
the API tests make them (tests/query_rows.py).

What `list_agents` costs, for example (6):
  1  the session's agent, with its home namespace and user (is it still active?);
  2  SAVEPOINT: the tool's own transaction (agent_context), nested in the test's transaction;
  3  set_config('role', 'tmws_agent') and set_config('app.current_agent_id'): row-level security on;
  4  the agents, with their home namespaces joined (one more than the limit, to say `truncated`);
  5  set_config back to the connection's own role and no agent;
  6  RELEASE SAVEPOINT: the tool's transaction commits.
"""
from __future__ import annotations

import pytest

from agents import tools as agent_tools
from compat import tools as persona_tools
from memories import tools as memory_tools
from namespaces import tools as namespace_tools
from tests.query_rows import add_memories, add_tasks
from tmws_site.mcp_server import _call_as_agent
from workflows import tools as task_tools

pytestmark = pytest.mark.django_db


@pytest.fixture
def calling(django_assert_num_queries):
    """Call a tool as an agent under an exact query count; answer its result."""

    def call(tool, agent, queries: int, **arguments) -> dict:
        with django_assert_num_queries(queries):
            return _call_as_agent(tool, agent.pk, arguments)

    return call


def test_list_agents(team, make_agent, calling):
    # given: the eight agents of the cast
    owner = team["owner"].agent
    assert calling(agent_tools.list_agents, owner, QUERIES["list_agents"])["count"] == 8
    # when
    for index, namespace in enumerate(["team", "team", "squad", "other", "company"]):
        make_agent(f"extra-{index}", namespace, capabilities={"python": True})
    # then
    assert calling(agent_tools.list_agents, owner, QUERIES["list_agents"])["count"] == 13


def test_list_namespaces(team, make_namespace, calling):
    # given: the owner's team and its ancestor company
    owner = team["owner"].agent
    assert calling(namespace_tools.list_namespaces, owner, QUERIES["list_namespaces"])["count"] == 2
    # when: open namespaces, each with an open child
    for index in range(3):
        make_namespace(f"open-{index}", policy="open")
        make_namespace(f"open-{index}-child", parent=f"open-{index}", policy="open")
    # then
    assert calling(namespace_tools.list_namespaces, owner, QUERIES["list_namespaces"])["count"] == 8


def test_list_tasks(team, calling):
    # given
    owner = team["owner"].agent
    add_tasks(team, 3)
    assert calling(task_tools.list_tasks, owner, QUERIES["list_tasks"])["count"] == 3
    # when
    add_tasks(team, 5)
    # then
    assert calling(task_tools.list_tasks, owner, QUERIES["list_tasks"])["count"] == 8


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_search_memories(team, calling, mode):
    # given: only keyword hits (embeddings are computed on commit, which these tests do not reach)
    owner = team["owner"].agent
    add_memories(team, 3)
    arguments = {"query": "harbour note", "mode": mode, "limit": 50}
    assert calling(memory_tools.search_memories, owner, QUERIES[f"search_memories-{mode}"], **arguments)["count"] == 3
    # when
    add_memories(team, 5)
    # then
    assert calling(memory_tools.search_memories, owner, QUERIES[f"search_memories-{mode}"], **arguments)["count"] == 8


def test_recall_memory(team, calling):
    # given
    owner = team["owner"].agent
    add_memories(team, 3)
    arguments = {"query": "harbour note", "limit": 50}
    assert calling(persona_tools.recall_memory, owner, QUERIES["recall_memory"], **arguments)["count"] == 3
    # when
    add_memories(team, 5)
    # then
    assert calling(persona_tools.recall_memory, owner, QUERIES["recall_memory"], **arguments)["count"] == 8


# How many personas each lists before and after the five new agents (each with the capability).
PERSONAS = {"list_personas": (8, 13), "find_personas_by_capability": (1, 6)}


@pytest.mark.parametrize("tool", ["list_personas", "find_personas_by_capability"])
def test_persona_lists(team, make_agent, calling, tool):
    # given: the cast, of which only the owner has the capability
    from agents.contracts import UpdateAgent
    from agents.services import update_agent

    owner = team["owner"].agent
    update_agent(owner, owner, UpdateAgent.parse({"capabilities": {"python": True}}))
    arguments = {"capability": "python"} if tool == "find_personas_by_capability" else {}
    assert calling(getattr(persona_tools, tool), owner, QUERIES[tool], **arguments)["count"] == PERSONAS[tool][0]
    # when
    for index, namespace in enumerate(["team", "team", "squad", "other", "company"]):
        make_agent(f"extra-{index}", namespace, capabilities={"python": True})
    # then
    assert calling(getattr(persona_tools, tool), owner, QUERIES[tool], **arguments)["count"] == PERSONAS[tool][1]


QUERIES = {
    "list_agents": 6,
    "list_namespaces": 9,
    "list_tasks": 8,
    "search_memories-keyword": 10,
    "search_memories-hybrid": 16,
    "recall_memory": 16,
    "list_personas": 6,
    "find_personas_by_capability": 6,
}
