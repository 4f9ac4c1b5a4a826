"""The MCP server: agent tools from every app, served over stdio and streamable HTTP.

Tools are plain functions in each app's `tools.py`, registered with `@agent_tool(...)`. Their
first parameter receives the calling agent; the rest become the tool's input schema. Every
call:

- reloads the agent (a retired agent loses access mid-session),
- runs inside `core.db.agent_context(agent)`: one transaction under row-level security,
  rolled back when the tool refuses,
- turns a `ServiceError` into the SDK's `ToolError`, so the client sees the message (a plain
  exception would reach it only as "Error executing tool <name>").

Transports (both authenticate an agent API key with `agents.authentication.user_for_key`):

- stdio: `python manage.py mcp` with the key in `TMWS_API_KEY`; one agent per process.
- streamable HTTP at `/mcp`: a Django view (`mcp_http_view`) that answers each POST statelessly
  with a JSON response, so it runs under the plain WSGI `runserver`/gunicorn as well as ASGI. The
  key comes from `Authorization: Bearer <key>`; a missing or bad key answers 401.
"""
from __future__ import annotations

import contextvars
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.db import close_old_connections, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.module_loading import autodiscover_modules
from django.views.decorators.csrf import csrf_exempt
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import ToolAnnotations

from core import limits
from core.db import agent_context
from core.errors import ServiceError, error_body
from core.tools import AgentTool, registered, tool_error, tool_for

logger = logging.getLogger(__name__)
# Each stateless HTTP exchange starts and stops a transport; those INFO lines would drown the log.
for _noisy in ("mcp.server.streamable_http", "mcp.server.streamable_http_manager"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

SERVER_NAME = "tmws"
SERVER_INSTRUCTIONS = (
    "TMWS 2: long-term memory and tasks shared between AI agents. Store what you learn with store_memory, "
    "find it again with search_memories, share it with share_memory, and coordinate work with the task tools. "
    "Every call acts as the agent whose API key opened the session; you only ever see what that agent may read."
)

# The agent (primary key) the current session or HTTP request acts as.
_session_agent_pk: contextvars.ContextVar = contextvars.ContextVar("tmws_mcp_agent_pk", default=None)


class SessionRefused(Exception):
    """No usable agent key: the session is not opened."""


# --- Authentication -----------------------------------------------------------------------

def agent_for_key(raw_key: str | None):
    """The active agent a plaintext API key belongs to, or SessionRefused with a clear reason."""
    from rest_framework.exceptions import AuthenticationFailed

    from agents.authentication import user_for_key

    if not raw_key or not raw_key.strip():
        raise SessionRefused("No API key given: pass an agent's API key (TMWS_API_KEY for stdio, "
                             "'Authorization: Bearer <key>' for HTTP).")
    try:
        user = user_for_key(raw_key.strip())
    except AuthenticationFailed as exc:
        raise SessionRefused(str(exc.detail)) from exc
    agent = getattr(user, "agent", None)
    if agent is None:
        raise SessionRefused("This key belongs to an operator; MCP sessions are opened with an agent's API key.")
    return agent


# --- Tools -------------------------------------------------------------------------------

def registered_tools() -> list[AgentTool]:
    """Every tool of every installed app: each app's `tools` module is found like its `admin` module."""
    autodiscover_modules("tools")
    return registered()


def _call_as_agent(tool: AgentTool | Callable[..., Any], agent_pk, arguments: dict) -> Any:
    """Run one tool (its registration or its body) synchronously as the agent, inside its RLS transaction."""
    spec = tool if isinstance(tool, AgentTool) else tool_for(tool)
    import access
    from agents.models import Agent

    own_connection = not connection.in_atomic_block
    if own_connection:
        close_old_connections()
    try:
        agent = Agent.objects.select_related("namespace", "user").filter(pk=agent_pk).first()
        if agent is None or not agent.is_active or not agent.user.is_active:
            raise ToolError("This agent is inactive or no longer exists; open a new session with an active key.")
        with access.request_scope(), agent_context(agent):
            return spec.fn(agent, **spec.bind(arguments))
    except ServiceError as exc:
        raise tool_error(exc) from exc
    finally:
        if own_connection:
            close_old_connections()


def _as_mcp_function(spec: AgentTool) -> Callable[..., Any]:
    """An async function taking the tool's arguments (AgentTool.arguments), running the body in Django's sync world."""
    async def call(**arguments):
        agent_pk = _session_agent_pk.get()
        if agent_pk is None:
            raise ToolError("No authenticated agent for this session.")
        # thread_sensitive keeps every ORM call on one thread: the request's own thread under HTTP.
        return await sync_to_async(_call_as_agent, thread_sensitive=True)(spec, agent_pk, arguments)

    call.__name__ = spec.fn.__name__
    call.__doc__ = spec.description
    call.__signature__ = inspect.Signature(spec.arguments())  # type: ignore[attr-defined]
    return call


def build_server() -> MCPServer:
    """A server with every registered tool."""
    server = MCPServer(SERVER_NAME, title="TMWS 2", instructions=SERVER_INSTRUCTIONS, version="2.0.0",
                       log_level="WARNING")
    for spec in registered_tools():
        server.add_tool(
            _as_mcp_function(spec),
            name=spec.name,
            title=spec.title,
            description=spec.description,
            annotations=ToolAnnotations(
                title=spec.title,
                read_only_hint=spec.read_only,
                destructive_hint=spec.destructive,
                open_world_hint=False,
            ),
        )
    return server


_server: MCPServer | None = None
_server_lock = threading.Lock()


def get_server() -> MCPServer:
    global _server
    with _server_lock:
        if _server is None:
            _server = build_server()
        return _server


# --- stdio ----------------------------------------------------------------------------------

def serve_stdio(agent) -> None:
    """Serve MCP over stdin/stdout as `agent` until the client closes the stream."""
    server = get_server()
    _session_agent_pk.set(agent.pk)
    # Tool calls run on sync_to_async's worker thread with their own connection.
    connection.close()
    server.run("stdio")


# --- streamable HTTP (stateless, JSON responses) -------------------------------------------------

def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse(error_body("not_authenticated", message), status=401)
    response["WWW-Authenticate"] = 'Bearer realm="mcp"'
    return response


def _bearer_key(request: HttpRequest) -> str | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def _asgi_scope(request: HttpRequest) -> dict:
    host, _, port = request.get_host().partition(":")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()],
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
        "server": (host, int(port) if port.isdigit() else (443 if request.is_secure() else 80)),
    }


async def _serve_http_message(agent_pk, scope: dict, body: bytes) -> tuple[int, list, bytes]:
    """Run one HTTP exchange through the SDK's stateless streamable-HTTP transport."""
    import anyio

    _session_agent_pk.set(agent_pk)
    answered = anyio.Event()
    request_sent = False
    status, headers, chunks = 500, [], []

    async def receive():
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    manager = StreamableHTTPSessionManager(app=get_server()._lowlevel_server, stateless=True, json_response=True)
    async with manager.run():
        await manager.handle_request(scope, receive, send)
    return status, headers, b"".join(chunks)


@csrf_exempt
@transaction.non_atomic_requests
def mcp_http_view(request: HttpRequest) -> HttpResponse:
    """`/mcp`: MCP streamable HTTP for agents (stateless; every POST carries the agent's Bearer key)."""
    key = _bearer_key(request)
    if key is None:
        return _unauthorized("Authentication required: send 'Authorization: Bearer <agent API key>'.")
    try:
        agent = agent_for_key(key)
    except SessionRefused as exc:
        return _unauthorized(str(exc))
    if request.method != "POST":
        # Stateless: no server-to-client stream (GET) and no session to end (DELETE); clients expect 405 here.
        response = JsonResponse(error_body("method_not_allowed", "Use POST."), status=405)
        response["Allow"] = "POST"
        return response
    request.user = agent.user  # for the request log line
    try:
        slot = limits.acquire(agent)
    except limits.TooManyInFlight as exc:
        return JsonResponse(exc.as_dict(), status=exc.status, headers=exc.headers)
    try:
        status, headers, body = async_to_sync(_serve_http_message)(agent.pk, _asgi_scope(request), request.body)
    finally:
        limits.release(slot)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        header = name.decode("latin-1")
        if header.lower() not in ("content-length", "transfer-encoding", "connection"):
            response[header] = value.decode("latin-1")
    return response


