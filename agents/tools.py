"""MCP tools about agents: who am I, who else is there, registration and capabilities."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from core.errors import InvalidInput
from core.tools import agent_tool, filtered, render_json

from . import services
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
def register_agent(
    agent: Agent,
    agent_id: Annotated[str, Field(description="Unique id: 1-128 letters, digits, '.', '_', ':', '@' or '-'.")],
    namespace: Annotated[str, Field(description="Slug of the new agent's home namespace (must exist).")],
    display_name: Annotated[str, Field(max_length=200, description="Human-readable name.")] = "",
    agent_type: Annotated[str, Field(max_length=64, description="Free text, e.g. 'language_model'.")] = "language_model",
    capabilities: Annotated[dict[str, Any] | None, Field(description="JSON object of capabilities.")] = None,
    configuration: Annotated[dict[str, Any] | None, Field(description="JSON object of configuration.")] = None,
    access_level: Annotated[Literal["standard", "admin"], Field(description="'admin' agents manage others.")] = "standard",
    metadata: Annotated[dict[str, Any] | None, Field(description="Free JSON object.")] = None,
) -> dict[str, Any]:
    created, key = services.register_agent(
        agent,
        agent_id=agent_id,
        namespace=namespace,
        display_name=display_name,
        agent_type=agent_type,
        capabilities=capabilities,
        configuration=configuration,
        access_level=access_level,
        metadata=metadata,
    )
    return {**render_agent(created), "api_key": key}


@agent_tool(
    title="Update my capabilities",
    description="Replace (or merge into) the calling agent's capabilities object; optionally its display name. "
    'Example: {"capabilities": {"python": true, "max_context": 200000}, "merge": true}.',
)
def update_capabilities(
    agent: Agent,
    capabilities: Annotated[dict[str, Any], Field(description="JSON object of capabilities.")],
    merge: Annotated[bool, Field(description="Merge into the current capabilities instead of replacing them.")] = False,
    display_name: Annotated[str | None, Field(max_length=200, description="New display name (optional).")] = None,
) -> dict[str, Any]:
    if not isinstance(capabilities, dict):
        raise InvalidInput("capabilities must be a JSON object.", field="capabilities")
    changes: dict[str, Any] = {
        "capabilities": {**(agent.capabilities or {}), **capabilities} if merge else capabilities,
    }
    if display_name is not None:
        changes["display_name"] = display_name
    return render_agent(services.update_agent(agent, agent, **changes))


@agent_tool(
    title="Update my configuration",
    description="Merge into (or with merge=false replace) the calling agent's configuration object. "
    'Setting "auto_categorise": true has the service file your memories left in \'general\' under their nearest '
    'neighbours\' categories once a day. Example: {"configuration": {"auto_categorise": true}}.',
)
def update_configuration(
    agent: Agent,
    configuration: Annotated[dict[str, Any], Field(description="JSON object of configuration keys.")],
    merge: Annotated[bool, Field(description="Merge into the current configuration instead of replacing it.")] = True,
) -> dict[str, Any]:
    if not isinstance(configuration, dict):
        raise InvalidInput("configuration must be a JSON object.", field="configuration")
    new = {**(agent.configuration or {}), **configuration} if merge else configuration
    return render_agent(services.update_agent(agent, agent, configuration=new))
