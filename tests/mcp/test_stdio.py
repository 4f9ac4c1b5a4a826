"""The stdio transport: `manage.py mcp` spawned by the SDK's real client, as an agent named by TMWS_API_KEY."""
from __future__ import annotations

import asyncio
import subprocess

import pytest

from agents.services import retire_agent
from memories.models import Memory

from .conftest import PROJECT_DIR, call, stdio_command, stdio_env, stdio_session

V2_TOOLS = {
    "whoami", "list_agents", "register_agent", "update_capabilities", "update_configuration",
    "store_memory", "search_memories", "get_memory", "update_memory", "delete_memory", "share_memory",
    "memory_feedback", "memory_insights", "categorise_memories", "list_namespaces", "join_namespace",
    "create_workflow", "list_workflows", "run_workflow", "get_workflow_run", "cancel_workflow_run",
}
PERSONA_TOOLS = {
    "create_memory", "recall_memory", "get_memory_stats", "list_personas", "get_persona",
    "get_persona_capabilities", "find_personas_by_capability",
}

pytestmark = pytest.mark.slow


def test_agent_lists_tools_stores_searches_and_gets_clear_errors(mcp_team):
    # given
    key = mcp_team["a"].key

    async def scenario():
        async with stdio_session(key) as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            me = await call(session, "whoami")
            stored = await call(session, "store_memory", {
                "content": "The secret rollout plan starts with the EU region.",
                "access_level": "private", "namespace": "team-alpha",
            })
            found = await call(session, "search_memories", {"query": "which region does the rollout start in", "limit": 5})
            empty = await call(session, "store_memory", {"content": "  ", "namespace": "team-alpha"})
            unknown = await call(session, "store_memory", {"content": "x", "namespace": "no-such-namespace"})
            return names, me, stored, found, empty, unknown

    # when
    names, me, stored, found, empty, unknown = asyncio.run(scenario())

    # then
    assert V2_TOOLS | PERSONA_TOOLS <= names
    assert me.data["agent_id"] == "mcp-agent-a"
    assert me.data["namespace"] == "team-alpha"
    assert stored.data["agent_id"] == "mcp-agent-a"
    assert stored.data["access_level"] == "private"
    assert stored.data["embedding_status"] == "pending"  # computed after commit
    assert [hit["memory"]["id"] for hit in found.data["results"]] == [stored.data["id"]]
    assert empty.error and "[invalid] content may not be empty. (field: content)" in empty.text
    assert unknown.error and "Namespace 'no-such-namespace' does not exist." in unknown.text
    assert list(Memory.objects.values_list("content", "embedding_status")) == [
        ("The secret rollout plan starts with the EU region.", "ready")  # Celery runs eagerly in the subprocess
    ]


def test_other_agent_cannot_read_or_delete_a_private_memory(mcp_team, private_memory_of_a):
    # given
    memory_id = str(private_memory_of_a.pk)

    async def scenario():
        async with stdio_session(mcp_team["b"].key) as session:
            return (
                await call(session, "get_memory", {"memory_id": memory_id}),
                await call(session, "search_memories", {"query": "which region does the rollout start in"}),
                await call(session, "delete_memory", {"memory_id": memory_id}),
            )

    # when
    got, searched, deleted = asyncio.run(scenario())

    # then
    assert got.error and "[not_found] Memory not found." in got.text
    assert searched.data["results"] == []
    assert deleted.error and "[not_found]" in deleted.text
    assert Memory.objects.get(pk=memory_id).content == "The secret rollout plan starts with the EU region."


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "No API key given"),
        ("", "No API key given"),
        ("not-a-key", "Invalid API key."),
        ("tmws_0000000000000000_forged-secret", "Invalid API key."),
    ],
)
def test_session_without_a_valid_key_is_refused(mcp_team, key, message):
    # when
    finished = subprocess.run(stdio_command(), cwd=PROJECT_DIR, env=stdio_env(key), input="", capture_output=True,
                              text=True, timeout=120)
    # then
    assert finished.returncode != 0
    assert f"MCP session refused: {message}" in finished.stderr
    assert finished.stdout == ""


def test_retired_agent_is_refused(mcp_team):
    # given
    from django.contrib.auth import get_user_model

    operator = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456!")
    retire_agent(operator, mcp_team["b"].agent)
    # when
    finished = subprocess.run(stdio_command(), cwd=PROJECT_DIR, env=stdio_env(mcp_team["b"].key), input="",
                              capture_output=True, text=True, timeout=120)
    # then
    assert finished.returncode != 0
    assert "MCP session refused:" in finished.stderr


def test_sdk_client_cannot_open_a_session_with_a_bad_key(mcp_team):
    # when / then
    async def scenario():
        async with stdio_session("not-a-key") as session:
            await session.list_tools()

    with pytest.raises(Exception):  # noqa: B017 - the SDK reports the closed connection in its own way
        asyncio.run(scenario())
