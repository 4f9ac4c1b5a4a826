"""The input of every agent operation, declared once (core.contracts).

REST views parse request bodies with these, MCP tools take them as their argument schema, the
OpenAPI document shows them, and the admin and the management commands build them; agents.services
receives the parsed instances and keeps only the checks that need the database or depend on who
acts (existence, rights, the admin level, operator-only configuration keys, reserved metadata).
"""
from __future__ import annotations

from typing import Annotated

from django.core.exceptions import ValidationError
from pydantic import Field

from core import fields, validation
from core.contracts import Contract, FieldError
from namespaces.contracts import MAX_AGENT_ID_LENGTH, NamespaceName, not_null

from .models import AgentAccessLevel, agent_id_validator

MAX_DISPLAY_NAME_LENGTH = 200
MAX_AGENT_TYPE_LENGTH = 64
MAX_KEY_NAME_LENGTH = 100
DEFAULT_AGENT_TYPE = "language_model"
DEFAULT_KEY_NAME = "script"


def clean_agent_id(value, field: str) -> str:
    """A new agent's id: 1-128 letters, digits, '.', '_', ':', '@' or '-', starting with a letter or digit."""
    agent_id = validation.text(value, field, max_length=MAX_AGENT_ID_LENGTH, required=True)
    try:
        agent_id_validator(agent_id)
    except ValidationError as exc:
        raise FieldError(exc.messages[0]) from None
    return agent_id


AgentId = fields.value(clean_agent_id, str, max_length=MAX_AGENT_ID_LENGTH, description=(
    "Unique id: 1-128 letters, digits, '.', '_', ':', '@' or '-', starting with a letter or digit; "
    "it cannot be changed later."))
DisplayName = Annotated[
    fields.text(MAX_DISPLAY_NAME_LENGTH, description="Human-readable name (default: the agent_id)."),
    not_null("a string"),
]
AgentType = fields.text(MAX_AGENT_TYPE_LENGTH, required=True, description="Free text, e.g. 'language_model'.")
Capabilities = Annotated[fields.json_object(max_depth=None, description="JSON object of capabilities."),
                         not_null("a JSON object")]
Configuration = Annotated[fields.json_object(max_depth=None, description=(
    "JSON object of configuration keys (e.g. auto_categorise: true; max_in_flight is set by operators)."
)), not_null("a JSON object")]
Metadata = Annotated[fields.json_object(max_depth=None, description="Free JSON object."), not_null("a JSON object")]
HomeNamespace = Annotated[NamespaceName, Field(description="The agent's home namespace (it must exist).")]
Level = fields.choice(AgentAccessLevel.values, description=(
    "standard, or admin: admin agents manage other agents (superusers and admin agents grant it)."))
IsActive = fields.flag(description="Whether the agent's keys work; a retired agent is inactive.")


class RegisterAgent(Contract):
    """A new agent, with its home namespace; it receives a first API key."""

    agent_id: AgentId
    namespace: HomeNamespace
    display_name: DisplayName = ""
    agent_type: AgentType = DEFAULT_AGENT_TYPE
    capabilities: Capabilities = {}
    configuration: Configuration = {}
    access_level: Level = AgentAccessLevel.STANDARD
    metadata: Metadata = {}
    is_active: IsActive = True


class UpdateAgent(Contract):
    """The fields to change; those left out keep their value. An agent changes its own description only."""

    display_name: DisplayName = None
    agent_type: AgentType = None
    capabilities: Annotated[Capabilities, Field(description="Replaces the capabilities object.")] = None
    configuration: Annotated[Configuration, Field(description="Replaces the configuration object.")] = None
    namespace: Annotated[NamespaceName, Field(description="Move the agent to this home namespace.")] = None
    access_level: Level = None
    is_active: IsActive = None
    metadata: Annotated[Metadata, Field(description="Replaces the metadata object.")] = None


class UpdateCapabilities(Contract):
    """The calling agent's new capabilities (the MCP tool update_capabilities)."""

    capabilities: Capabilities
    merge: fields.flag(description="Merge into the current capabilities instead of replacing them.") = False
    display_name: Annotated[DisplayName, Field(description="New display name (optional).")] = None


class UpdateConfiguration(Contract):
    """The calling agent's new configuration (the MCP tool update_configuration)."""

    configuration: Configuration
    merge: fields.flag(description="Merge into the current configuration instead of replacing it.") = True


class PurgeAgent(Contract):
    """Erase an agent and what it owns (operators); its shared and public memories may go to another agent."""

    purge: fields.query_flag(description="true: erase the agent and its data for good (without it, DELETE retires the "
                       "agent and keeps its memories).") = False
    hand_to: fields.optional_text(MAX_AGENT_ID_LENGTH, description="The agent that receives the purged agent's "
                                  "shared, public and system memories (default: they are deleted too).") = None
    dry_run: fields.query_flag(description="Only count what would be erased; change nothing.") = False


class IssueOperatorKey(Contract):
    """A bearer key for an operator's scripts."""

    name: fields.text(MAX_KEY_NAME_LENGTH, description="A label for the key.") = DEFAULT_KEY_NAME
