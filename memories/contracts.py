"""The input of every memory operation, declared once (core.contracts).

REST views parse request bodies with these, MCP tools take them as their argument schema, the
OpenAPI document shows them, and the admin builds them from its forms; memories.services and
memories.search receive the parsed instances.
"""
from __future__ import annotations

import datetime
import unicodedata
import uuid
from typing import Annotated, Literal

from django.conf import settings
from pydantic import BeforeValidator, Field, model_validator

from access.choices import AccessLevel, AccessPolicy, Role
from core import fields, validation
from core.contracts import FIELD, Contract, FieldError
from core.errors import InvalidInput

MAX_CATEGORY_LENGTH = 64
MAX_METADATA_DEPTH = 8
MAX_NAMESPACE_LENGTH = 128
MAX_AGENT_ID_LENGTH = 128
LEARNING_WEIGHT_RANGE = (0.0, 10.0)
MAX_QUERY_LENGTH = 10_000
MAX_LIMIT = 100
MAX_TURNS = 20
MAX_TURN_LENGTH = 10_000
MAX_SHARE_AGENTS = 100
SEARCH_MODES = ("hybrid", "semantic", "keyword")


def clean_content(value, field: str) -> str:
    """Memory text: a string with something visible in it, storable, within TMWS_MAX_CONTENT_LENGTH."""
    if not isinstance(value, str):
        raise FieldError(f"{field} must be a string.")
    if not any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in value):
        raise FieldError(f"{field} may not be empty.")
    if not validation.is_storable(value):
        raise FieldError(f"{field} {validation.UNSTORABLE_MESSAGE}")
    limit = settings.TMWS_MAX_CONTENT_LENGTH
    if len(value) > limit:
        raise FieldError(f"{field} is {len(value)} characters; the limit is {limit}.")
    return value


def clean_category(value, field: str) -> str:
    if value is None:
        return "general"
    if (not isinstance(value, str) or not value.strip() or len(value) > MAX_CATEGORY_LENGTH
            or not validation.is_storable(value)):
        raise FieldError(f"{field} must be 1-{MAX_CATEGORY_LENGTH} characters.")
    return value.strip()


def _checked(cleaner):
    return BeforeValidator(lambda value: cleaner(value, FIELD))


Content = Annotated[str, _checked(clean_content), Field(
    description="The text to remember (not blank; at most TMWS_MAX_CONTENT_LENGTH characters, 50,000 by default).")]
Category = Annotated[Annotated[str, Field(max_length=MAX_CATEGORY_LENGTH)], _checked(clean_category), Field(
    description="Category, 1-64 characters; default 'general'.")]
LearningWeight = fields.number(*LEARNING_WEIGHT_RANGE, description="Importance weight 0-10 (default 1).")
Metadata = fields.json_object(max_depth=MAX_METADATA_DEPTH, description="Free JSON object (at most 8 levels deep).")
NamespaceSlug = fields.optional_text(MAX_NAMESPACE_LENGTH, description="Namespace slug; defaults to your home namespace.")
AgentId = fields.optional_text(MAX_AGENT_ID_LENGTH, description="Operators only: the owning agent.")
# The parts of a search that other contracts (API v1's, the persona-era tools') take as they are.
Query = fields.text(MAX_QUERY_LENGTH, required=True, description="What to look for, in natural language.")
SearchLimit = fields.integer(1, MAX_LIMIT, description="Number of results, 1-100.")
SearchMode = Annotated[Literal["hybrid", "semantic", "keyword"], fields.cleaned_by(
    lambda value, field: validation.choice(value or "hybrid", SEARCH_MODES, field)),
    Field(description="Ranking: hybrid (meaning and words), semantic or keyword.")]
CategoryFilter = fields.optional_text(MAX_CATEGORY_LENGTH * 2, description="Only memories of this category.")
MinSimilarity = fields.optional_number(-1.0, 1.0, description="Drop results less similar than this.")


MAX_TTL_SECONDS = 10 * 365 * 86_400
ExpiresAt = fields.optional_datetime(description="From this moment on the memory is never returned (get, list, search) "
                                     "and is deleted soon after; ISO 8601, in the future. Null: never expires.")
TtlSeconds = fields.optional_integer(1, MAX_TTL_SECONDS, description="Expire this many seconds from now (instead of "
                                     "expires_at).")


class Expiring(Contract):
    """An expiry given as a moment or as seconds from now (not both)."""

    expires_at: ExpiresAt = None
    ttl_seconds: TtlSeconds = None

    @model_validator(mode="after")
    def _one_expiry(self):
        if self.expires_at is not None and self.ttl_seconds is not None:
            raise InvalidInput("Give expires_at or ttl_seconds, not both.", field="ttl_seconds")
        return self

    def expiry(self, now: datetime.datetime) -> datetime.datetime | None:
        """The moment the memory expires (None: never), refused if it is not in the future."""
        moment = now + datetime.timedelta(seconds=self.ttl_seconds) if self.ttl_seconds else self.expires_at
        if moment is not None and moment <= now:
            raise InvalidInput("expires_at must be in the future.", field="expires_at")
        return moment


class StoreMemory(Expiring):
    """A new memory. Agents store as themselves; operators name the owner (none for a system memory)."""

    content: Content
    access_level: fields.choice(AccessLevel.values, description=(
        "Who may read it: private (the owner), shared (the namespace's members and named agents), "
        "public (every agent), system (every agent; admin agents and operators write).")) = AccessLevel.PRIVATE
    namespace: NamespaceSlug = None
    context_tags: fields.tags(description="Context tags (1-64 characters each, at most 50).") = []
    memory_category: Category = "general"
    learning_weight: LearningWeight = 1.0
    parent_memory_id: fields.optional_uuid(description="A memory this one refines or answers.") = None
    metadata: Metadata = {}
    agent_id: AgentId = None


class StoreMemories(Contract):
    """Several memories at once, all or nothing (at most TMWS_MAX_BULK_MEMORIES)."""

    memories: Annotated[list[StoreMemory], Field(min_length=1, description="The memories, stored in this order.")]


class UpdateMemory(Expiring):
    """The fields to change; those left out keep their value (`expires_at: null` removes an expiry)."""

    model_config = {**Contract.model_config, "extra": "forbid"}
    unknown_field_message = "{field} cannot be changed."

    # Not given: left as it is. A null resets tags, category, weight and metadata to their defaults.
    content: Content = None
    access_level: fields.optional_choice(AccessLevel.values, description="New access level (the owner only).") = None
    namespace: fields.optional_text(MAX_NAMESPACE_LENGTH, description="Move to this namespace (the owner only).") = None
    context_tags: fields.tags(description="Replaces the tags.") = None
    memory_category: Category = None
    learning_weight: LearningWeight = None
    metadata: Annotated[Metadata, Field(description="Replaces the metadata object.")] = None


class RestoreVersion(Contract):
    version: fields.integer(1, validation.INT32_MAX, description="The version to make current again (see the history).")


MAX_MERGE = 50


class MergeMemories(Contract):
    """A group of memories (near duplicates, say) to fold into one; the originals are retired, restorable."""

    memory_ids: Annotated[
        list[Annotated[uuid.UUID, fields.cleaned_by(validation.uuid_value)]],
        Field(min_length=2, max_length=MAX_MERGE, description="The memories to merge (2-50), the first one leading: "
              "the merged memory takes its namespace (and, for operators, its owner)."),
    ]
    content: Annotated[Content, Field(description="The merged memory's text; default: the distinct texts of the "
                                      "group, in the order given, separated by blank lines.")] = None

    @model_validator(mode="after")
    def _distinct(self):
        seen = set()
        for index, memory_id in enumerate(self.memory_ids):
            if memory_id in seen:
                raise InvalidInput(f"memory_ids[{index}] repeats {memory_id}.", field=f"memory_ids[{index}]")
            seen.add(memory_id)
        return self


MAX_BULK_UPDATE = 1000


class UpdateMemories(Expiring):
    """One change to many memories at once, all or nothing: what a suggestion of the insights applies in one call."""

    model_config = {**Contract.model_config, "extra": "forbid"}
    unknown_field_message = "{field} cannot be changed in bulk."

    memory_ids: Annotated[
        list[Annotated[uuid.UUID, fields.cleaned_by(validation.uuid_value)]],
        Field(min_length=1, max_length=MAX_BULK_UPDATE, description="The memories to change (1-1,000), each one you "
              "may change."),
    ]
    memory_category: Category = None
    learning_weight: LearningWeight = None

    @model_validator(mode="after")
    def _something_to_change(self):
        if not {"memory_category", "learning_weight", "expires_at", "ttl_seconds"} & self.given().keys():
            raise InvalidInput("Nothing to change: give memory_category, learning_weight, expires_at or ttl_seconds.")
        return self


class ShareMemory(Contract):
    agent_ids: Annotated[
        list[Annotated[str, Field(max_length=MAX_AGENT_ID_LENGTH)]],
        Field(min_length=1, max_length=MAX_SHARE_AGENTS, description="The agents to let read (or stop letting read) it."),
    ]


class Feedback(Contract):
    useful: fields.flag(description="Whether the memory helped.")


class Categorise(Contract):
    apply: fields.flag(description="Store the proposed categories (default: only propose).") = False
    agent_id: fields.optional_text(MAX_AGENT_ID_LENGTH, description="Operators: the agent whose memories to file.") = None


class SearchMemories(Contract):
    """A search: the query, how to rank, and filters that narrow the candidates first."""

    query: Query
    limit: SearchLimit = 10
    mode: SearchMode = "hybrid"
    namespace: fields.optional_text(MAX_NAMESPACE_LENGTH, description="Only memories in this namespace.") = None
    agent_id: fields.optional_text(MAX_AGENT_ID_LENGTH, description="Only memories owned by this agent.") = None
    access_levels: Annotated[list[Literal[tuple(AccessLevel.values)]] | None, fields.cleaned_by(
        lambda value, field: _access_levels(value, field)), Field(description="Only these access levels.")] = None
    context_tags: fields.string_list(description="Only memories carrying all of these tags.") = None
    memory_category: CategoryFilter = None
    min_similarity: MinSimilarity = None


def _access_levels(value, field: str):
    levels = validation.string_list(value, field, max_items=len(AccessLevel.values))
    if levels and not all(level in AccessLevel.values for level in levels):
        raise FieldError(f"{field} must be a list of {', '.join(AccessLevel.values)}.")
    return levels


def _turn(value, field: str):
    """A turn: a string, or an object with a string `content` (and `role`)."""
    if isinstance(value, str):
        value = {"content": value}
    if not (isinstance(value, dict) and isinstance(value.get("content"), str)
            and isinstance(value.get("role", "user"), str)):
        raise FieldError(f"{field} must be an object with a string 'content' (and 'role').")
    return value


class ConversationTurn(Contract):
    role: fields.text(32, description="Who spoke: user, assistant, system or tool.") = "user"
    content: fields.text(MAX_TURN_LENGTH, description="What was said.")


class TaskContext(Contract):
    model_config = {**Contract.model_config, "extra": "forbid"}

    title: fields.optional_text(MAX_TURN_LENGTH, description="The task's title.") = None
    description: fields.optional_text(MAX_TURN_LENGTH, description="What the task is about.") = None
    tags: fields.string_list(description="Memories with these tags rank higher.") = None
    namespace: fields.optional_text(MAX_TURN_LENGTH, description="Memories in this namespace rank higher.") = None
    task_type: fields.optional_text(MAX_TURN_LENGTH, description="The kind of task.") = None
    memory_category: fields.optional_text(MAX_TURN_LENGTH, description="The category of memory wanted.") = None


class ContextualSearch(SearchMemories):
    """A search that the recent conversation and the task at hand shape."""

    conversation_context: Annotated[
        list[Annotated[ConversationTurn, _checked(_turn)]] | None,
        Field(max_length=MAX_TURNS, description="Recent turns, oldest first (strings or {role, content}).")] = None
    task_context: Annotated[TaskContext | None, Field(description="The task at hand.")] = None


class PersonaEraChanges(Contract):
    """The persona-era names update_memory still accepts (the MCP tool of the same name)."""

    importance: fields.optional_number(0.0, 1.0, description="Persona-era: importance 0-1 (mapped to learning_weight).") = None
    tags: fields.string_list(max_items=validation.MAX_TAGS, description="Persona-era name of context_tags.") = None
    context_type: fields.optional_text(MAX_CATEGORY_LENGTH, description="Persona-era name of memory_category.") = None

    def merged_into(self, changes: UpdateMemory, convert_importance) -> UpdateMemory:
        """`changes` with these given under their v2 names (naming a field both ways is refused)."""
        merged = changes.given()
        for old, new, value in (("importance", "learning_weight", self.importance), ("tags", "context_tags", self.tags),
                                ("context_type", "memory_category", self.context_type)):
            if value is None:
                continue
            if new in merged:
                raise InvalidInput(f"Give {new} or the persona-era {old}, not both.", field=old)
            merged[new] = convert_importance(value) if old == "importance" else value
        return UpdateMemory.parse(merged)


# --- Export and import (memories.transfer) -------------------------------------------------------------------

TRANSFER_FORMAT = "tmws-memories"
TRANSFER_VERSION = 1
MAX_EMBEDDING_DIMENSIONS = 16_000  # pgvector's limit for an indexed vector
MAX_TRANSFER_SHARES = 10_000
MAX_TRANSFER_VERSIONS = 100_000


def clean_namespace_path(value, field: str) -> str:
    """A namespace path as exports write it: slugs joined by '/', root first (at most 8 levels)."""
    from namespaces.models import MAX_DEPTH, PATH_SEPARATOR, validate_namespace_slug

    if not isinstance(value, str) or not value:
        raise FieldError(f"{field} must be a namespace path such as 'company/team'.")
    parts = value.split(PATH_SEPARATOR)
    if len(parts) > MAX_DEPTH:
        raise FieldError(f"{field} nests more than {MAX_DEPTH} namespaces deep.")
    for part in parts:
        try:
            validation.slug(part, field, validate_namespace_slug)
        except InvalidInput as exc:
            raise FieldError(f"{field}: '{part[:64]}': {exc.message}") from None
    return value


def clean_embedding(value, field: str) -> list[float] | None:
    """An embedding: a list of finite numbers, or null."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_EMBEDDING_DIMENSIONS:
        raise FieldError(f"{field} must be a list of 1-{MAX_EMBEDDING_DIMENSIONS} numbers, or null.")
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float) or number != number or abs(number) == float("inf"):
            raise FieldError(f"{field} must hold finite numbers only.")
    return [float(number) for number in value]


def clean_transfer_version(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError(f"{field} must be a whole number of at least 1.")
    if value > TRANSFER_VERSION:
        raise FieldError(f"{field} {value} of the format is newer than this installation reads "
                         f"(1 to {TRANSFER_VERSION}).")
    return value


def clean_required_uuid(value, field: str):
    return validation.uuid_value(value, field)


def clean_moment(value, field: str):
    moment = validation.datetime_value(value, field)
    if moment is None:
        raise FieldError(f"{field} is required.")
    return moment


NamespacePath = fields.value(clean_namespace_path, str, description="A namespace path, root first: 'company/team'.")
OptionalNamespacePath = Annotated[str | None, BeforeValidator(
    lambda value: None if value in (None, "") else clean_namespace_path(value, FIELD)),
    Field(description="A namespace path, root first; null when not given.")]
MemoryIdentifier = fields.value(clean_required_uuid, uuid.UUID, description="The memory's id (a UUID).")
Moment = fields.value(clean_moment, datetime.datetime, description="An ISO 8601 date and time.")


class TransferHeader(Contract):
    """The first line of an export: what it is and which embedding model made its vectors."""

    format: fields.choice((TRANSFER_FORMAT,), description=f"Always '{TRANSFER_FORMAT}'.")
    version: fields.value(clean_transfer_version, int, description=f"The format's version (this installation "
                                                                    f"reads 1 to {TRANSFER_VERSION}).")
    embedding_model: fields.text(100, description="The model that made the embeddings in the file.") = ""
    embedding_dimensions: fields.integer(0, MAX_EMBEDDING_DIMENSIONS, description="Their dimensions.") = 0
    exported_at: fields.optional_datetime(description="When the export was made.") = None
    source: fields.text(1000, description="The installation the export was made on.") = ""


class TransferNamespace(Contract):
    """What an import needs to create a namespace that does not exist yet."""

    access_policy: fields.choice(AccessPolicy.values, description="open, invite_only or closed.") = \
        AccessPolicy.INVITE_ONLY
    display_name: fields.text(200, description="Human-readable name.") = ""
    description: fields.text(10_000, description="What the namespace is for.") = ""


class TransferMembership(Contract):
    namespace: NamespacePath
    role: fields.choice(Role.values, description="member or admin.") = Role.MEMBER


class TransferAgent(Contract):
    """An agent as an export names it: its public id, and what an import needs to register it."""

    agent_id: fields.text(MAX_AGENT_ID_LENGTH, required=True, description="The agent's public id.")
    display_name: fields.text(200, description="Human-readable name.") = ""
    agent_type: fields.text(64, description="Free text, e.g. 'language_model'.") = ""
    capabilities: fields.json_object(max_depth=None, description="The agent's capabilities.") = {}
    access_level: fields.choice(("standard", "admin"), description="standard or admin.") = "standard"
    is_active: fields.flag(description="Whether the agent's keys work.") = True
    namespace: OptionalNamespacePath = None
    memberships: Annotated[list[TransferMembership], Field(max_length=1000)] = []


class TransferVersion(Contract):
    """One state of a memory's history."""

    version: fields.integer(1, validation.INT32_MAX, description="The version's number.")
    change: fields.choice(("create", "update", "restore", "merge"), description="How the version came about.")
    content: Content
    access_level: fields.choice(AccessLevel.values, description="The access level then.")
    namespace: NamespacePath
    agent_id: fields.optional_text(MAX_AGENT_ID_LENGTH, description="The owner then.") = None
    context_tags: fields.tags(description="The tags then.") = []
    memory_category: Category = "general"
    learning_weight: LearningWeight = 1.0
    changed_at: Moment
    changed_by: fields.optional_text(200, description="The agent id, 'operator:<username>', 'operator' or null.") = None


class TransferredMemory(Contract):
    """One memory line of an export (memories.transfer)."""

    id: MemoryIdentifier
    content: Content
    agent: Annotated[TransferAgent | None, Field(description="The owner; null for a system memory.")] = None
    namespace: NamespacePath
    namespaces: Annotated[dict[str, TransferNamespace], Field(
        description="Namespaces the line names (and their ancestors) by path, to create those that are missing.")] = {}
    access_level: fields.choice(AccessLevel.values, description="private, shared, public or system.")
    context_tags: fields.tags(description="Context tags.") = []
    memory_category: Category = "general"
    learning_weight: LearningWeight = 1.0
    metadata: fields.json_object(max_depth=MAX_METADATA_DEPTH, description="Free JSON object.") = {}
    parent_memory_id: fields.optional_uuid(description="The memory this one refines or answers.") = None
    expires_at: fields.optional_datetime(description="When the memory expires.") = None
    created_at: fields.optional_datetime(description="When it was stored.") = None
    updated_at: fields.optional_datetime(description="When it last changed.") = None
    embedding_model: fields.optional_text(100, description="The model that made `embedding`.") = None
    embedding: Annotated[list[float] | None, fields.cleaned_by(clean_embedding), Field(
        description="The embedding, or null when the memory was not embedded.")] = None
    shares: Annotated[list[TransferAgent], Field(max_length=MAX_TRANSFER_SHARES)] = []
    history: Annotated[list[TransferVersion], Field(max_length=MAX_TRANSFER_VERSIONS)] = []

    @model_validator(mode="after")
    def _consistent(self):
        if self.agent is None and self.access_level != AccessLevel.SYSTEM:
            raise InvalidInput("agent is required unless access_level is system.", field="agent")
        if self.embedding is not None and not self.embedding_model:
            raise InvalidInput("embedding_model is required with an embedding.", field="embedding_model")
        for path in self.namespaces:
            clean_namespace_path(path, "namespaces")
        return self


class ExportMemories(Contract):
    """What to export (GET /api/v2/memories/export, `manage.py export_memories`)."""

    namespace: fields.optional_text(64 * 8 + 8, description=(
        "Only memories in this namespace and the namespaces below it (a name or a path).")) = None
    agent_id: fields.optional_text(MAX_AGENT_ID_LENGTH, description=(
        "Only memories owned by this agent (operators; an agent exports its own memories only).")) = None
