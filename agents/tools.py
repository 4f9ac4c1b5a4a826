"""MCP tools about agents: who am I, who else is there, registration and capabilities."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from core.tools import agent_tool, filtered, render_json

from . import services
from .contracts import RegisterAgent, UpdateAgent, UpdateCapabilities, UpdateConfiguration
from .filters import AgentFilter
from .models import Agent

MAX_LIST = 200


def render_agent(agent: Agent) -> dict:
    """An agent in the REST API's shape (GET /api/v2/agents/{agent_id})."""
    return render_agents([agent])[0]


def render_agents(agents) -> list[dict]:
    """Agents in the REST API's shape, through one serializer for the lot."""
    from .api.serializers import AgentSerializer

    return render_json(AgentSerializer(agents, many=True).data)


@agent_tool(
    title="Who am I",
    read_only=True,
    description="Describe the agent this session acts as: agent_id, home namespace, access level, capabilities.",
)
def whoami(agent: Agent) -> dict[str, Any]:
    return render_agent(agent)


@agent_tool(
    title="List agents",
    read_only=True,
    description="List registered agents, optionally filtered by namespace, type or a capability key. "
    'Example: {"capability": "code_review", "active_only": true}.',
)
def list_agents(
    agent: Agent,
    namespace: Annotated[str | None, Field(description="Only agents whose home namespace is this slug.")] = None,
    agent_type: Annotated[str | None, Field(description="Only agents of this type, e.g. 'language_model'.")] = None,
    capability: Annotated[str | None, Field(description="Only agents whose capabilities contain this key.")] = None,
    active_only: Annotated[bool, Field(description="Leave out retired (inactive) agents.")] = True,
    limit: Annotated[int, Field(ge=1, le=MAX_LIST, description="At most this many agents.")] = 50,
) -> dict[str, Any]:
    agents = filtered(
        AgentFilter, Agent.objects.visible_to(agent).select_related("namespace").order_by("agent_id"),
        namespace=namespace, agent_type=agent_type, capability=capability, is_active=True if active_only else None,
    )
    found = render_agents(agents[: limit + 1])
    return {"results": found[:limit], "count": len(found[:limit]), "truncated": len(found) > limit}


@agent_tool(
    title="Register an agent",
    description="Register a new agent (admin agents only) and return it with its API key, shown once. "
    'Example: {"agent_id": "research-bot", "namespace": "team-alpha", "capabilities": {"search": true}}.',
)
def register_agent(agent: Agent, data: RegisterAgent) -> dict[str, Any]:
    created, key = services.register_agent(agent, data)
    return {**render_agent(created), "api_key": key}


@agent_tool(
    title="Update my capabilities",
    description="Replace (or merge into) the calling agent's capabilities object; optionally its display name. "
    'Example: {"capabilities": {"python": true, "max_context": 200000}, "merge": true}.',
)
def update_capabilities(agent: Agent, data: UpdateCapabilities) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "capabilities": {**(agent.capabilities or {}), **data.capabilities} if data.merge else data.capabilities,
    }
    if data.display_name is not None:
        changes["display_name"] = data.display_name
    return render_agent(services.update_agent(agent, agent, UpdateAgent.parse(changes)))


@agent_tool(
    title="Update my configuration",
    description="Merge into (or with merge=false replace) the calling agent's configuration object. "
    'Setting "auto_categorise": true has the service file your memories left in \'general\' under their nearest '
    'neighbours\' categories once a day. Example: {"configuration": {"auto_categorise": true}}.',
)
def update_configuration(agent: Agent, data: UpdateConfiguration) -> dict[str, Any]:
    new = {**(agent.configuration or {}), **data.configuration} if data.merge else data.configuration
    return render_agent(services.update_agent(agent, agent, UpdateAgent.parse({"configuration": new})))
