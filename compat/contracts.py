"""The persona-era inputs, declared once (core.contracts): API v1's bodies and query strings, the persona MCP tools.

Each contract describes the input as old clients send it (persona_id, importance 0-1, tags,
context_type, ...); the views and tools parse with it, then translate the parsed instance into the
v2 input the service takes (`memories.contracts.StoreMemory`, `UpdateMemory`, `SearchMemories`, or
the task and workflow fields of `workflows.task_services` and `workflows.workflow_services`). Types
and limits are v2's wherever a field is a v2 field under another name; what only the database can
tell (does the persona, namespace or dependency exist, may the caller write there) stays with the
lookups and the services.

API v1 is lenient where the persona-era service was, and these contracts keep that: unknown keys
are ignored, a falsy `context_type` means `general`, a falsy search filter is no filter, and a
`persona_id` that is not a string names no persona (404, as any unknown persona).
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from access.choices import AccessLevel
from core import fields, validation
from core.contracts import Contract
from core.errors import NotFound
from memories.contracts import (
    MAX_QUERY_LENGTH,
    Category,
    CategoryFilter,
    Content,
    Metadata,
    MinSimilarity,
    NamespaceSlug,
    SearchLimit,
    SearchMemories,
    SearchMode,
    StoreMemory,
    UpdateMemory,
)
from workflows.choices import TaskPriority, TaskStatus, WorkflowType
from workflows.contracts import (
    MAX_RETRIES,
    MAX_TEXT_LENGTH,
    MAX_TITLE_LENGTH,
    MAX_TYPE_LENGTH,
    WORKFLOW_DEFINITION_STATUSES,
)

from .adapter import DEFAULT_IMPORTANCE, MEMORY_LEGACY_KEY, importance_to_learning_weight

MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 50
# Capability names and persona types the persona tools look for.
MAX_NAME_LENGTH = 128


def _falsy_is_absent(value):
    """Persona-era filters and context_type: an empty or false value counts as not given."""
    return value or None


def clean_persona_reference(value, field: str) -> str | None:
    """A persona name or persona-era UUID; missing, null or "" is None. Anything else names no persona."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise NotFound("Persona not found.")
    return value


def _query_integer(low: int, high: int, default: int):
    return lambda value, field: validation.query_integer(value, field, low, high, default=default)


def _query_text(value, field: str) -> str | None:
    """A query-string filter taken as given; an empty one is no filter."""
    return value or None


def _raw_query(value, field: str) -> str:
    """The search text as sent (it is echoed back so), checked as the search will take it."""
    validation.text(value, field, max_length=MAX_QUERY_LENGTH, required=True)
    return value


def _optional_json_object(value, field: str) -> dict | None:
    """A JSON object (as Metadata checks it); null stays null."""
    return None if value is None else validation.json_object(value, field, max_depth=validation.MAX_JSON_DEPTH)


def _optional_text(max_length: int):
    """A string of at most `max_length` characters; null stays null (the service then leaves the field)."""
    return lambda value, field: None if value is None else validation.text(value, field, max_length=max_length)


PersonaReference = fields.value(clean_persona_reference, str | None, description=(
    "A persona: its name (the agent_id, e.g. 'athena') or its persona-era UUID."))
Importance = fields.number(0.0, 1.0, description="Importance 0-1 (mapped to learning_weight = 0.5 + 1.5 x importance).")
Tags = fields.tags(description="Tags (= context_tags; 1-64 characters each, at most 50).")
ContextType = Annotated[Category, BeforeValidator(_falsy_is_absent), Field(
    description="Kind of memory (= memory_category, 1-64 characters); empty means 'general'.")]
RawQuery = fields.value(_raw_query, str, max_length=MAX_QUERY_LENGTH, description="What to look for.")
TagFilter = Annotated[fields.string_list(description="Only memories carrying all of these tags (= context_tags)."),
                      BeforeValidator(_falsy_is_absent)]
ContextTypeFilter = Annotated[CategoryFilter, BeforeValidator(_falsy_is_absent), Field(
    description="Only memories of this kind (= memory_category).")]
MinImportance = fields.optional_number(0.0, 1.0, description="Drop memories less important than this.")
QueryText = fields.value(_query_text, str | None)
JsonValue = fields.value(validation.json_value, Any)


# --- API v1 query strings ---------------------------------------------------------------------

class Page(Contract):
    """Paging of every v1 list: `limit` 1-100 (default 50) items from `offset`."""

    limit: fields.value(_query_integer(1, MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT), int, ge=1, le=MAX_LIST_LIMIT,
                        description="Items per page, 1-100.") = DEFAULT_LIST_LIMIT
    offset: fields.value(_query_integer(0, validation.INT32_MAX, 0), int, ge=0, le=validation.INT32_MAX,
                         description="Items to skip.") = 0


class PersonaListQuery(Page):
    """GET /api/v1/personas: values other than those below leave the filter off, as in the persona era."""

    persona_only: fields.value(lambda value, field: value in ("1", "true"), bool,
                               description="1 or true: only agents migrated from personas.") = False
    is_active: fields.value(lambda value, field: {"true": True, "false": False}.get(value), bool | None,
                            description="true or false: only active or only inactive personas.") = None


class MemoryListQuery(Page):
    persona_id: QueryText = None
    context_type: QueryText = None
    tag: QueryText = None


class TaskListQuery(Page):
    status: QueryText = None
    assigned_persona_id: QueryText = None


class WorkflowListQuery(Page):
    status: QueryText = None


# --- memories -------------------------------------------------------------------------------

class MemoryChanges(Contract):
    """PUT/PATCH /api/v1/memory/{id}: the persona-era fields to change (unknown ones are ignored)."""

    content: Content = None
    importance: Importance = None
    tags: Tags = None
    context_type: ContextType = None
    # null is kept apart from {}: it replaces the metadata without keeping what the import recorded.
    metadata: fields.value(_optional_json_object, dict[str, Any] | None, description="Replaces the metadata.") = None
    namespace: NamespaceSlug = None
    access_level: fields.optional_choice(AccessLevel.values, description="New access level.") = None

    def v2_fields(self) -> dict:
        """The given fields under their v2 names."""
        given = self.given()
        changes = {}
        for old, new in (("content", "content"), ("tags", "context_tags"), ("context_type", "memory_category"),
                         ("metadata", "metadata"), ("namespace", "namespace"), ("access_level", "access_level")):
            if old in given:
                changes[new] = given[old]
        if "importance" in given:
            changes["learning_weight"] = importance_to_learning_weight(self.importance)
        return changes

    def update(self, legacy_record=None) -> UpdateMemory:
        """The v2 changes; `legacy_record`, when given, stays in a metadata object that replaces the old one."""
        changes = self.v2_fields()
        if legacy_record is not None and isinstance(changes.get("metadata"), dict):
            changes["metadata"] = {**changes["metadata"], MEMORY_LEGACY_KEY: legacy_record}
        return UpdateMemory.parse(changes)


class NewMemory(MemoryChanges):
    """POST /api/v1/memory: a memory as the persona era stored it; `shared` unless said otherwise."""

    content: Content
    persona_id: PersonaReference = None
    metadata: Metadata = {}
    access_level: fields.choice(AccessLevel.values, description="Who may read it (default shared).") = AccessLevel.SHARED

    def store(self, agent_id: str | None = None, namespace: str | None = None) -> StoreMemory:
        """The v2 memory, owned by `agent_id` (the persona's agent) and in `namespace` when given."""
        data = {**self.v2_fields(), "access_level": self.access_level}
        if agent_id:
            data["agent_id"] = agent_id
        if namespace is not None:
            data["namespace"] = namespace
        return StoreMemory.parse(data)


class PersonaSearch(Contract):
    """A persona-era search: the query, one persona's memories, and filters applied before ranking."""

    query: RawQuery
    persona_id: PersonaReference = None
    limit: SearchLimit = 10
    tags: TagFilter = None
    context_type: ContextTypeFilter = None
    min_similarity: MinSimilarity = None
    min_importance: MinImportance = None

    def v2_search(self, agent_id: str | None, mode: str) -> SearchMemories:
        """The v2 search; `agent_id` is the persona's agent, None for every owner."""
        data = {"query": self.query, "limit": self.limit, "mode": mode, "agent_id": agent_id,
                "context_tags": self.tags, "memory_category": self.context_type, "min_similarity": self.min_similarity}
        return SearchMemories.parse({key: value for key, value in data.items() if value is not None})

    def important_enough(self, items: list[dict]) -> list[dict]:
        """The results at or above `min_importance` (all of them without it)."""
        if self.min_importance is None:
            return items
        return [item for item in items if item["importance"] >= self.min_importance]


class MemorySearch(PersonaSearch):
    """POST /api/v1/memory/search."""

    mode: SearchMode = "hybrid"

    def search(self, agent_id: str | None) -> SearchMemories:
        return self.v2_search(agent_id, self.mode)


# --- tasks ----------------------------------------------------------------------------------

class TaskFields(Contract):
    """POST, PUT and PATCH /api/v1/tasks: the persona-era task fields (create leaves progress and result out)."""

    title: fields.text(MAX_TITLE_LENGTH, required=True, description="The task's title.") = None
    description: fields.text(MAX_TEXT_LENGTH, description="What the task is about.") = None
    task_type: fields.text(MAX_TYPE_LENGTH, description="The kind of task (default general).") = None
    priority: fields.choice(TaskPriority.values, description="The task's priority.") = None
    status: fields.choice(TaskStatus.values, description="The task's status.") = None
    dependencies: Annotated[Any, Field(description="Ids of tasks this one waits for.")] = None
    tags: fields.tags(description="The task's tags.") = None
    metadata: Metadata = None
    max_retries: fields.integer(0, MAX_RETRIES, description="How often a failed task may be retried.") = None
    namespace: Annotated[Any, Field(description="Namespace slug; defaults to your home namespace.")] = None
    progress: fields.optional_number(0.0, 1.0, description="Progress 0-1.") = None
    result: Annotated[JsonValue, Field(description="The task's result (any JSON).")] = None
    assigned_persona_id: PersonaReference = None
    error_message: fields.value(_optional_text(MAX_TEXT_LENGTH), str | None, description="Why the task failed.") = None

    def v2_fields(self) -> dict:
        """The given fields under their v2 names, but for the persona (the view looks its agent up)."""
        given = self.given()
        changes = {name: value for name, value in given.items()
                   if name not in ("assigned_persona_id", "error_message")}
        if "error_message" in given:
            changes["error"] = given["error_message"]
        return changes


class CompleteTask(Contract):
    """POST /api/v1/tasks/{id}/complete."""

    result: Annotated[JsonValue, Field(description="The task's result (any JSON).")] = None


# --- workflows ------------------------------------------------------------------------------

class WorkflowFields(Contract):
    """POST, PUT and PATCH /api/v1/workflows: the workflow fields, under the names v2 also uses."""

    name: fields.text(MAX_TITLE_LENGTH, required=True, description="The workflow's name.") = None
    description: fields.text(MAX_TEXT_LENGTH, description="What the workflow does.") = None
    workflow_type: fields.choice(WorkflowType.values, description="How the steps run.") = None
    status: fields.choice(WORKFLOW_DEFINITION_STATUSES,
                          description="draft, active or inactive.") = None
    steps: Annotated[Any, Field(description="The steps (checked against the step actions by the service).")] = None
    config: fields.json_object(description="Free JSON object.") = None
    tags: fields.tags(description="The workflow's tags.") = None
    metadata: Metadata = None
    namespace: Annotated[Any, Field(description="Namespace slug; defaults to your home namespace.")] = None


class ExecuteWorkflow(Contract):
    """POST /api/v1/workflows/{id}/execute: the run's input, under its v2 name or the persona-era `context`."""

    input: fields.json_object(description="The run's input.") = None
    context: fields.json_object(description="Persona-era name of input (used when input is not given).") = None

    def run_input(self) -> dict | None:
        return self.input if "input" in self.model_fields_set else self.context


# --- persona-era MCP tools --------------------------------------------------------------------

class CreatePersonaMemory(Contract):
    """The create_memory tool: as POST /api/v1/memory, with the persona-era defaults of the tool."""

    content: Content
    persona_id: Annotated[PersonaReference, Field(description="Owning persona; must be you (optional).")] = None
    importance: Importance = DEFAULT_IMPORTANCE
    tags: Tags = []
    context_type: ContextType = "general"
    metadata: Metadata = {}
    access_level: fields.choice((AccessLevel.PRIVATE.value, AccessLevel.SHARED.value, AccessLevel.PUBLIC.value),
                                description="Who may read it.") = AccessLevel.SHARED
    namespace: NamespaceSlug = None

    def store(self, agent_id: str | None) -> StoreMemory:
        return StoreMemory.parse({
            "content": self.content, "access_level": self.access_level, "namespace": self.namespace,
            "context_tags": self.tags, "memory_category": self.context_type, "metadata": self.metadata,
            "learning_weight": importance_to_learning_weight(self.importance), "agent_id": agent_id,
        })


class RecallMemory(PersonaSearch):
    """The recall_memory tool: a persona-era search whose ranking is `semantic` or hybrid."""

    semantic: fields.flag(description="true: rank by meaning only; false: meaning and words.") = False

    def search(self, agent_id: str | None) -> SearchMemories:
        return self.v2_search(agent_id, "semantic" if self.semantic else "hybrid")


class PersonaFilter(Contract):
    """One persona's records, or everyone's visible ones."""

    persona_id: Annotated[PersonaReference, Field(description="Only this persona's memories.")] = None


def _named_persona(value, field: str) -> str:
    """A persona reference that must be given; one that is not a string names no persona."""
    if not isinstance(value, str):
        raise NotFound("Persona not found.")
    return value


class PersonaLookup(Contract):
    persona_id: fields.value(_named_persona, str, description=(
        "Persona name (the agent_id, e.g. 'athena') or its persona-era UUID."))


class ListPersonas(Contract):
    active_only: fields.flag(description="Leave out inactive personas.") = True
    persona_type: fields.optional_text(MAX_NAME_LENGTH, description=(
        "Only this persona type (athena, artemis, ...).")) = None
    personas_only: fields.flag(description="Only agents migrated from personas (agent_type 'persona').") = False


class FindPersonas(Contract):
    capability: fields.text(MAX_NAME_LENGTH, required=True, description="The capability to look for.")
    active_only: fields.flag(description="Leave out inactive personas.") = True
