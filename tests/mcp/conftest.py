"""Fixtures for the MCP tests: real SDK clients over stdio (`manage.py mcp`) and over HTTP (`live_server`).

Both transports run in other processes or threads than the test, so these tests use
`transactional_db`: what the fixtures create is committed and visible to the server. The stdio
subprocess is pointed at the test database through DATABASE_URL.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from django.db import connection
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from memories.contracts import StoreMemory
from memories.services import create_memory

PROJECT_DIR = Path(__file__).resolve().parents[2]


def subprocess_database_url() -> str:
    """A libpq URL for the database the tests run against (the test_ database, not the project's)."""
    settings = connection.settings_dict
    host = settings["HOST"]
    if host.startswith("/"):
        return f"postgresql://{settings['USER']}:{settings['PASSWORD']}@/{settings['NAME']}?host={host}"
    return f"postgresql://{settings['USER']}:{settings['PASSWORD']}@{host}:{settings['PORT'] or 5432}/{settings['NAME']}"


def stdio_env(key: str | None) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CELERY_")}
    env.update(DEBUG="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DATABASE_URL=subprocess_database_url(),
               LOG_LEVEL="WARNING")
    env.pop("TMWS_API_KEY", None)
    if key is not None:
        env["TMWS_API_KEY"] = key
    return env


def stdio_command() -> list[str]:
    return [sys.executable, str(PROJECT_DIR / "manage.py"), "mcp"]


@asynccontextmanager
async def stdio_session(key: str | None):
    command, *args = stdio_command()
    params = StdioServerParameters(command=command, args=args, cwd=str(PROJECT_DIR), env=stdio_env(key))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(base_url: str, key: str | None):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(f"{base_url}/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


class Outcome:
    """One tool call's result: `error` and its message, or the JSON `data` it returned."""

    def __init__(self, result):
        self.error = bool(result.is_error)
        self.text = " ".join(getattr(block, "text", "") for block in result.content or [])
        self.data = None if self.error else json.loads(self.text)

    def __repr__(self) -> str:
        return f"<Outcome error={self.error} {self.text[:300]!r}>"


async def call(session: ClientSession, tool: str, arguments: dict | None = None) -> Outcome:
    return Outcome(await session.call_tool(tool, arguments or {}))


def run_http(base_url: str, key: str, calls: list[tuple[str, dict]]) -> list[Outcome]:
    """Open one HTTP session as the key's agent, make the calls in order, return their outcomes."""

    async def scenario():
        async with http_session(base_url, key) as session:
            return [await call(session, tool, arguments) for tool, arguments in calls]

    return asyncio.run(scenario())


@pytest.fixture
def mcp_team(transactional_db, make_namespace, make_agent):
    """Agent A (team-alpha) and agent B (team-beta), with keys; an admin agent; and an open namespace."""
    make_namespace("team-alpha")
    make_namespace("team-beta")
    make_namespace("community", policy="open")
    return {
        "a": make_agent("mcp-agent-a", "team-alpha", capabilities={"python": True}),
        "b": make_agent("mcp-agent-b", "team-beta"),
        "admin": make_agent("mcp-admin", "team-beta", access_level="admin"),
    }


@pytest.fixture
def private_memory_of_a(mcp_team):
    """A private memory of agent A, already embedded."""
    return create_memory(mcp_team["a"].agent, StoreMemory.parse({
        "content": "The secret rollout plan starts with the EU region.",
        "access_level": "private",
        "namespace": "team-alpha",
    }))
