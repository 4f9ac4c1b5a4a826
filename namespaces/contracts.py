"""The input of every namespace operation, declared once (core.contracts).

REST views parse request bodies with these, the OpenAPI document shows them, and the admin builds
them from its forms; namespaces.services receives the parsed instances and keeps only the checks
that need the database (existence, rights, policies below closed namespaces, cycles, depth).
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from access.choices import AccessPolicy, Role
from core import fields, validation
from core.contracts import FIELD, Contract, FieldError

from .models import validate_namespace_slug

MAX_SLUG_LENGTH = 64
MAX_DISPLAY_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
# Members are agents, named by agent_id (agents.contracts holds agents to the same limit).
MAX_AGENT_ID_LENGTH = 128


def not_null(kind: str) -> BeforeValidator:
    """Refuses a JSON null where a field has a value of its own (`kind`: "a string", "a JSON object")."""

    def refuse(value):
        if value is None:
            raise FieldError(f"{FIELD} must be {kind}.")
        return value

    return BeforeValidator(refuse)


def clean_slug(value, field: str) -> str:
    """A new namespace's name: 1-64 lowercase letters, digits, '-', '_' or '.' (no '..'); spaces around are dropped."""
    slug = validation.text(value, field, max_length=MAX_SLUG_LENGTH, required=True)
    return validation.slug(slug, field, validate_namespace_slug)


Slug = fields.value(clean_slug, str, max_length=MAX_SLUG_LENGTH, description=(
    "The namespace's name: 1-64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit; "
    "it cannot be changed later."))
DisplayName = Annotated[
    fields.text(MAX_DISPLAY_NAME_LENGTH, description="Human-readable name (default: the namespace's name)."),
    not_null("a string"),
]
Description = Annotated[
    fields.text(MAX_DESCRIPTION_LENGTH, description="What the namespace is for."), not_null("a string"),
]
Policy = fields.choice(AccessPolicy.values, description=(
    "Who joins: open (agents join themselves), invite_only (namespace admins add members), "
    "closed (only operators add members; everything below a closed namespace is closed too)."))
ParentNamespace = fields.optional_text(MAX_SLUG_LENGTH, description=(
    "The parent namespace's name; none (or null) for a top-level namespace."))
Metadata = Annotated[fields.json_object(max_depth=None, description="Free JSON object."), not_null("a JSON object")]
# The name of an existing namespace (its existence is the service's to check).
NamespaceName = fields.text(MAX_SLUG_LENGTH, required=True, description="The name of an existing namespace.")


class CreateNamespace(Contract):
    """A new namespace, top-level or below a parent."""

    namespace: Slug
    display_name: DisplayName = ""
    description: Description = ""
    access_policy: Policy = AccessPolicy.INVITE_ONLY
    parent_namespace: ParentNamespace = None
    metadata: Metadata = {}


class UpdateNamespace(Contract):
    """The fields to change; those left out keep their value. A namespace's name never changes."""

    display_name: DisplayName = None
    description: Description = None
    access_policy: Policy = None
    parent_namespace: Annotated[ParentNamespace, Field(
        description="Move under this namespace; null (or empty) moves it to the top level.")] = None
    metadata: Annotated[Metadata, Field(description="Replaces the metadata object.")] = None


class AddMember(Contract):
    """An agent to add to a namespace, or whose role there to change."""

    agent_id: fields.text(MAX_AGENT_ID_LENGTH, required=True, description="The agent to add (it must exist).")
    role: fields.choice(Role.values, description="member, or admin (admins add and remove members).") = Role.MEMBER
