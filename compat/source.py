"""Reading a persona-era database (ARCHITECTURE section 7): connection, schema check and preflight.

Everything here only reads the source. `preflight()` finds every problem that would stop an
import before anything is written to the target, and names the table, column and rows at fault.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from agents.models import AGENT_ID_PATTERN
from core.validation import MAX_TAG_LENGTH, MAX_TAGS, is_storable
from memories.contracts import MAX_CATEGORY_LENGTH
from memories.models import EMBEDDING_DIMENSIONS

from .adapter import PersonaRole, PersonaType

CONNECT_TIMEOUT_SECONDS = 10
EXAMPLES = 3

# Columns an import cannot do without; the others take their persona-era defaults when absent.
REQUIRED_COLUMNS = {
    "personas": ("id", "name", "type", "created_at"),
    "memories": ("id", "content", "persona_id", "embedding", "created_at"),
    "tasks": ("id", "title", "status", "assigned_persona_id", "created_at"),
    "workflows": ("id", "name", "workflow_type", "status", "steps", "created_at"),
}
OPTIONAL_COLUMNS = {
    "personas": (
        "updated_at", "metadata", "role", "display_name", "description", "specialties", "config", "preferences",
        "is_active", "capabilities", "total_tasks", "successful_tasks", "average_response_time", "last_active_at",
    ),
    "memories": (
        "updated_at", "metadata", "accessed_at", "access_count", "recall_count", "last_recalled_at", "importance",
        "decay_rate", "related_memories", "tags", "context_type",
    ),
    "tasks": (
        "updated_at", "metadata", "description", "task_type", "priority", "progress", "dependencies", "result",
        "error_message", "started_at", "completed_at", "retry_count", "max_retries", "tags",
    ),
    "workflows": (
        "updated_at", "metadata", "description", "current_step_index", "execution_count", "started_at",
        "completed_at", "last_executed_at", "error_message", "failed_step_index", "created_by", "tags", "config",
    ),
}
TABLES = ("personas", "memories", "tasks", "workflows")
TASK_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled", "skipped")
TASK_PRIORITIES = ("low", "medium", "high", "critical")
WORKFLOW_TYPES = ("sequential", "parallel", "conditional", "hybrid")
WORKFLOW_STATUSES = ("draft", "active", "inactive", "running", "paused", "completed", "failed", "cancelled")


class SourceError(Exception):
    """The source cannot be imported as it is; the message names every problem found."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


def redact(url: str) -> str:
    """The URL without its password, for logs and the import record."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str):
    """A read-only connection to the source, or SourceError saying why there is none."""
    import psycopg

    if not isinstance(url, str) or not re.match(r"^postgres(ql)?://", url):
        raise SourceError(f"--source-url must be a postgresql:// URL, got {redact(str(url))!r}.")
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"Cannot connect to the source database {redact(url)}: {reason}") from exc
    conn.read_only = True
    return conn


@dataclass
class SourceSchema:
    columns: dict[str, set[str]] = field(default_factory=dict)
    embedding_type: str = ""

    def has(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, set())

    def select_list(self, table: str) -> list[str]:
        return [c for c in REQUIRED_COLUMNS[table] + OPTIONAL_COLUMNS[table] if self.has(table, c)]

    @property
    def embedding_dimensions(self) -> int | None:
        match = re.fullmatch(r"vector\((\d+)\)", self.embedding_type)
        return int(match.group(1)) if match else None


def read_schema(conn) -> SourceSchema:
    """The columns of the four persona-era tables; SourceError if a table or required column is missing."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
        [list(TABLES)],
    ).fetchall()
    schema = SourceSchema()
    for table, column in rows:
        schema.columns.setdefault(table, set()).add(column)
    problems = []
    for table in TABLES:
        if table not in schema.columns:
            problems.append(f"table '{table}' is missing: this does not look like a persona-era database")
            continue
        missing = [c for c in REQUIRED_COLUMNS[table] if c not in schema.columns[table]]
        if missing:
            problems.append(f"table '{table}' lacks required column(s) {', '.join(missing)} (partial schema)")
    if problems:
        raise SourceError("The source schema is not the persona-era schema:\n  - " + "\n  - ".join(problems), problems)
    schema.embedding_type = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = 'memories'::regclass AND a.attname = 'embedding'"
    ).fetchone()[0]
    if not schema.embedding_type.startswith("vector"):
        raise SourceError(
            f"memories.embedding has type {schema.embedding_type}, expected vector({EMBEDDING_DIMENSIONS})."
        )
    return schema


def _ids(rows) -> str:
    shown = ", ".join(str(row[0]) for row in rows[:EXAMPLES])
    return f"{shown}{', ...' if len(rows) > EXAMPLES else ''}"


def _check(conn, problems: list[str], sql: str, message: str, params=()) -> None:
    rows = conn.execute(sql, params).fetchall()
    if rows:
        problems.append(f"{message}: {len(rows)} row(s), e.g. {_ids(rows)}")


def preflight(conn, schema: SourceSchema, *, unowned_agent: str | None, reembed: bool) -> dict:
    """Check every row the import would write; return the source counts or raise SourceError naming each problem."""
    problems: list[str] = []
    counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}

    _check(conn, problems, "SELECT id FROM personas WHERE name IS NULL OR btrim(name) = ''",
           "personas.name is empty")
    _check(conn, problems, "SELECT name FROM personas WHERE name !~ %s", "personas.name is not a valid agent_id",
           [AGENT_ID_PATTERN])
    _check(conn, problems, "SELECT id FROM personas WHERE type IS NULL OR type <> ALL(%s)",
           "personas.type is not one of " + ", ".join(PersonaType.values), [PersonaType.values])
    if schema.has("personas", "role"):
        _check(conn, problems, "SELECT id FROM personas WHERE role IS NOT NULL AND role <> ALL(%s)",
               "personas.role is not one of " + ", ".join(PersonaRole.values), [PersonaRole.values])

    if unowned_agent is None:
        _check(conn, problems, "SELECT id FROM memories WHERE persona_id IS NULL",
               "memories.persona_id is null (pass --unowned-agent AGENT_ID to give these memories an owner)")
    _check(conn, problems,
           "SELECT m.id FROM memories m LEFT JOIN personas p ON p.id = m.persona_id "
           "WHERE m.persona_id IS NOT NULL AND p.id IS NULL",
           "memories.persona_id names no persona (dangling reference)")
    _check(conn, problems, "SELECT id FROM memories WHERE content IS NULL OR btrim(content) = ''",
           "memories.content is empty")
    _check(conn, problems, "SELECT id FROM memories WHERE length(content) > %s",
           f"memories.content is longer than {settings.TMWS_MAX_CONTENT_LENGTH} characters",
           [settings.TMWS_MAX_CONTENT_LENGTH])
    if not reembed:
        declared = schema.embedding_dimensions
        if declared is not None and declared != EMBEDDING_DIMENSIONS:
            _check(conn, problems, "SELECT id FROM memories WHERE embedding IS NOT NULL",
                   f"memories.embedding is vector({declared}), not {EMBEDDING_DIMENSIONS} dimensions "
                   "(pass --reembed to compute new embeddings instead)")
        elif declared is None:
            _check(conn, problems,
                   "SELECT id FROM memories WHERE embedding IS NOT NULL AND vector_dims(embedding) <> %s",
                   f"memories.embedding does not have {EMBEDDING_DIMENSIONS} dimensions "
                   "(pass --reembed to compute new embeddings instead)", [EMBEDDING_DIMENSIONS])
    if schema.has("memories", "tags"):
        bad_tags = []
        for memory_id, tags in conn.execute("SELECT id, tags FROM memories WHERE tags IS NOT NULL"):
            if not _tags_ok(tags):
                bad_tags.append((memory_id,))
        if bad_tags:
            problems.append(
                f"memories.tags is not a list of at most {MAX_TAGS} tags of 1-{MAX_TAG_LENGTH} characters: "
                f"{len(bad_tags)} row(s), e.g. {_ids(bad_tags)}"
            )
    if schema.has("memories", "context_type"):
        _check(conn, problems, "SELECT id FROM memories WHERE length(context_type) > %s",
               f"memories.context_type is longer than {MAX_CATEGORY_LENGTH} characters", [MAX_CATEGORY_LENGTH])

    _check(conn, problems,
           "SELECT t.id FROM tasks t LEFT JOIN personas p ON p.id = t.assigned_persona_id "
           "WHERE t.assigned_persona_id IS NOT NULL AND p.id IS NULL",
           "tasks.assigned_persona_id names no persona (dangling reference)")
    _check(conn, problems, "SELECT id FROM tasks WHERE title IS NULL OR btrim(title) = ''", "tasks.title is empty")
    _check(conn, problems, "SELECT id FROM tasks WHERE status IS NULL OR status <> ALL(%s)",
           "tasks.status is not one of " + ", ".join(TASK_STATUSES), [list(TASK_STATUSES)])
    if schema.has("tasks", "priority"):
        _check(conn, problems, "SELECT id FROM tasks WHERE priority IS NOT NULL AND priority <> ALL(%s)",
               "tasks.priority is not one of " + ", ".join(TASK_PRIORITIES), [list(TASK_PRIORITIES)])
    _check(conn, problems, "SELECT id FROM workflows WHERE name IS NULL OR btrim(name) = ''",
           "workflows.name is empty")
    _check(conn, problems, "SELECT id FROM workflows WHERE workflow_type IS NULL OR workflow_type <> ALL(%s)",
           "workflows.workflow_type is not one of " + ", ".join(WORKFLOW_TYPES), [list(WORKFLOW_TYPES)])
    _check(conn, problems, "SELECT id FROM workflows WHERE status IS NULL OR status <> ALL(%s)",
           "workflows.status is not one of " + ", ".join(WORKFLOW_STATUSES), [list(WORKFLOW_STATUSES)])
    if problems:
        raise SourceError(
            "The source has rows that cannot be imported (nothing was written):\n  - " + "\n  - ".join(problems),
            problems,
        )
    return counts


def _tags_ok(tags) -> bool:
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        return False
    return all(isinstance(t, str) and t.strip() and len(t.strip()) <= MAX_TAG_LENGTH and is_storable(t) for t in tags)


def fetch(conn, schema: SourceSchema, table: str, *, batch_size: int, skip_ids: set | None = None):
    """Yield lists of source rows (dicts) in created_at, id order; embeddings come as text ('[0.1,...]')."""
    columns = [f"{c}::text AS {c}" if (table, c) == ("memories", "embedding") else c for c in schema.select_list(table)]
    cursor = conn.cursor(name=f"tmws_import_{table}")
    cursor.itersize = batch_size
    cursor.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY created_at, id")
    names = [d.name for d in cursor.description]
    batch = []
    for row in cursor:
        record = dict(zip(names, row, strict=True))
        if skip_ids and record["id"] in skip_ids:
            continue
        batch.append(record)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
    cursor.close()


def parse_vector(text: str | None) -> list[float] | None:
    if text is None:
        return None
    return [float(x) for x in text.strip("[]").split(",") if x]
