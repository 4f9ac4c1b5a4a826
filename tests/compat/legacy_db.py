"""A persona-era database for tests: the schema of ARCHITECTURE section 7, and realistic rows."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import psycopg
from django.conf import settings

LEGACY_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE personas (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{}',
    name text NOT NULL UNIQUE,
    type text NOT NULL CHECK (type IN ('athena', 'artemis', 'hestia', 'bellona', 'seshat')),
    role text NOT NULL CHECK (role IN ('strategist', 'optimizer', 'auditor', 'coordinator', 'documenter')),
    display_name text NOT NULL,
    description text,
    specialties jsonb NOT NULL DEFAULT '[]',
    config jsonb NOT NULL DEFAULT '{}',
    preferences jsonb NOT NULL DEFAULT '{}',
    is_active boolean NOT NULL DEFAULT true,
    capabilities jsonb NOT NULL DEFAULT '[]',
    total_tasks integer NOT NULL DEFAULT 0,
    successful_tasks integer NOT NULL DEFAULT 0,
    average_response_time double precision,
    last_active_at timestamptz
);
CREATE TABLE memories (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{}',
    content text NOT NULL,
    embedding {embedding_type},
    accessed_at timestamptz,
    access_count integer NOT NULL DEFAULT 0,
    recall_count integer NOT NULL DEFAULT 0,
    last_recalled_at timestamptz,
    importance double precision NOT NULL DEFAULT 0.5,
    decay_rate double precision NOT NULL DEFAULT 0.01,
    persona_id uuid {persona_fk},
    related_memories jsonb NOT NULL DEFAULT '[]',
    tags jsonb NOT NULL DEFAULT '[]',
    context_type text,
    content_length integer GENERATED ALWAYS AS (length(content)) STORED,
    has_embedding boolean GENERATED ALWAYS AS (embedding IS NOT NULL) STORED
);
CREATE TABLE tasks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{}',
    title text NOT NULL,
    description text,
    task_type text NOT NULL DEFAULT 'general',
    status text NOT NULL DEFAULT 'pending',
    priority text NOT NULL DEFAULT 'medium',
    progress double precision NOT NULL DEFAULT 0,
    assigned_persona_id uuid {task_fk},
    dependencies jsonb NOT NULL DEFAULT '[]',
    result jsonb,
    error_message text,
    started_at timestamptz,
    completed_at timestamptz,
    retry_count integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL DEFAULT 3,
    tags jsonb NOT NULL DEFAULT '[]'
);
CREATE TABLE workflows (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{}',
    name text NOT NULL,
    description text,
    workflow_type text NOT NULL DEFAULT 'sequential',
    status text NOT NULL DEFAULT 'draft',
    steps jsonb NOT NULL DEFAULT '[]',
    current_step_index integer NOT NULL DEFAULT 0,
    execution_count integer NOT NULL DEFAULT 0,
    started_at timestamptz,
    completed_at timestamptz,
    last_executed_at timestamptz,
    error_message text,
    failed_step_index integer,
    created_by text,
    tags jsonb NOT NULL DEFAULT '[]',
    config jsonb NOT NULL DEFAULT '{}'
);
"""

PERSONAS = [
    ("athena", "athena", "strategist", "Athena - Harmonious Conductor", ["architecture", "planning"]),
    ("artemis", "artemis", "optimizer", "Artemis - Technical Perfectionist", ["performance", "code quality"]),
    ("hestia", "hestia", "auditor", "Hestia - Security Guardian", ["security", "risk analysis"]),
    ("bellona", "bellona", "coordinator", "Bellona - Tactical Coordinator", ["parallel execution"]),
    ("seshat", "seshat", "documenter", "Seshat - Knowledge Architect", ["documentation"]),
]

MEMORY_TEXTS = [
    ("athena", "The payment service should be split into ledger and gateway components.", ["architecture"], "decision"),
    ("athena", "Quarterly roadmap: migrate the search cluster before the holiday freeze.", ["planning"], "plan"),
    ("artemis", "Replacing the N+1 query in the order list cut p95 latency from 800 ms to 90 ms.", ["performance"],
     "optimization"),
    ("artemis", "Use connection pooling for the reporting job; it opened 400 connections.", ["database"], None),
    ("hestia", "The admin endpoint accepted unsigned JWTs; fixed by pinning the algorithm to RS256.", ["security"],
     "incident"),
    ("hestia", "Rotate the S3 credentials every 90 days; the audit flagged a 2-year-old key.", ["security", "audit"],
     "policy"),
    ("bellona", "Deploy order for the release: database migrations, workers, then web nodes.", ["deployment"],
     "procedure"),
    ("seshat", "API docs live in docs/api and are built by mkdocs on every merge to main.", ["documentation"], None),
    ("seshat", "Glossary: a tenant is one customer organisation with its own billing account.", ["glossary"],
     "reference"),
    ("athena", "Team agreed to prefer PostgreSQL over MongoDB for the new analytics store.", ["architecture"],
     "decision"),
]


def server_params() -> dict:
    db = settings.DATABASES["default"]
    return {"host": db["HOST"], "user": db["USER"] or "postgres", "password": db["PASSWORD"], "port": db["PORT"]}


def url_for(database: str) -> str:
    params = server_params()
    auth = quote(params["user"]) + (":" + quote(params["password"]) if params["password"] else ":")
    port = f":{params['port']}" if params["port"] and not params["host"].startswith("/") else ""
    if params["host"].startswith("/"):
        return f"postgresql://{auth}@/{database}?host={quote(params['host'])}"
    return f"postgresql://{auth}@{params['host']}{port}/{database}"


def admin_connect():
    params = server_params()
    kwargs = {"host": params["host"], "user": params["user"], "dbname": "postgres", "autocommit": True}
    if params["password"]:
        kwargs["password"] = params["password"]
    if params["port"]:
        kwargs["port"] = params["port"]
    return psycopg.connect(**kwargs)


def create_database(name: str) -> None:
    with admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_schema(url: str, *, embedding_type: str = "vector(384)", foreign_keys: bool = True) -> None:
    reference = "REFERENCES personas(id)" if foreign_keys else ""
    sql = (LEGACY_SCHEMA.replace("{embedding_type}", embedding_type)
           .replace("{persona_fk}", reference).replace("{task_fk}", reference))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def vector_text(values) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def populate(url: str, embed) -> dict:
    """Insert five personas, ten memories with real embeddings, three tasks and two workflows; return their ids."""
    base = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    ids: dict = {"personas": {}, "memories": [], "tasks": [], "workflows": []}
    with psycopg.connect(url, autocommit=True) as conn:
        for index, (name, ptype, role, display, specialties) in enumerate(PERSONAS):
            persona_id = uuid.uuid4()
            ids["personas"][name] = persona_id
            conn.execute(
                "INSERT INTO personas (id, created_at, updated_at, metadata, name, type, role, display_name, "
                "description, specialties, config, preferences, capabilities, total_tasks, successful_tasks, "
                "average_response_time, last_active_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, %s)",
                [persona_id, base + timedelta(minutes=index), base + timedelta(days=30), json.dumps({"version": 2}),
                 name, ptype, role, display, f"{display} of the persona-era team.", json.dumps(specialties),
                 json.dumps({"temperature": 0.3}), json.dumps({"language": "en"}),
                 json.dumps(["analysis", ptype]), 10 + index, 8 + index, 1.5 + index,
                 base + timedelta(days=60)],
            )
        vectors = embed([text for _, text, _, _ in MEMORY_TEXTS])
        for index, ((name, text, tags, context_type), vector) in enumerate(zip(MEMORY_TEXTS, vectors, strict=True)):
            memory_id = uuid.uuid4()
            ids["memories"].append(memory_id)
            conn.execute(
                "INSERT INTO memories (id, created_at, updated_at, metadata, content, embedding, accessed_at, "
                "access_count, recall_count, importance, decay_rate, persona_id, related_memories, tags, "
                "context_type) VALUES (%s, %s, %s, %s, %s, %s::vector, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [memory_id, base + timedelta(hours=index), base + timedelta(hours=index, minutes=5),
                 json.dumps({"source": "chat"}), text, vector_text(vector), base + timedelta(days=index),
                 index, index // 2, round(index / 10, 2), 0.01, ids["personas"][name],
                 json.dumps([str(ids["memories"][0])] if index else []), json.dumps(tags), context_type],
            )
        first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        ids["tasks"] = [first, second, third]
        for task_id, title, status, persona, deps in (
            (first, "Audit the authentication flow", "completed", "hestia", []),
            (second, "Optimise the order list query", "in_progress", "artemis", [str(first)]),
            (third, "Write the release notes", "pending", None, [str(first), str(second)]),
        ):
            conn.execute(
                "INSERT INTO tasks (id, created_at, updated_at, title, description, task_type, status, priority, "
                "progress, assigned_persona_id, dependencies, result, tags) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s)",
                [task_id, base + timedelta(days=1), base + timedelta(days=2), title, f"{title}.", "review", status,
                 "high", 1.0 if status == "completed" else 0.4 if status == "in_progress" else 0.0,
                 ids["personas"][persona] if persona else None, json.dumps(deps),
                 json.dumps({"findings": 2}) if status == "completed" else None, json.dumps(["q1"])],
            )
        for workflow_id, name, creator in ((uuid.uuid4(), "Release pipeline", "athena"),
                                           (uuid.uuid4(), "Security review", str(ids["personas"]["hestia"]))):
            ids["workflows"].append(workflow_id)
            conn.execute(
                "INSERT INTO workflows (id, created_at, updated_at, name, description, workflow_type, status, "
                "steps, execution_count, created_by, tags, config) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s)",
                [workflow_id, base + timedelta(days=3), base + timedelta(days=4), name, f"{name}.", "sequential",
                 "active", json.dumps([{"name": "plan", "action": "noop"}, {"name": "run", "action": "noop"}]),
                 3, creator, json.dumps(["ops"]), json.dumps({"timeout": 600})],
            )
    return ids


# Rows of MEMORY_TEXTS that a real persona-era database holds with gaps: memories stored before
# their embedding was computed, and memories written without a persona.
WITHOUT_EMBEDDING = (1, 4, 6)
WITHOUT_PERSONA = (6, 8)


def open_persona_era_gaps(url: str, ids: dict) -> dict:
    """Null the embedding and persona of some populated memories, as both occur in real databases; return their ids."""
    gaps = {
        "without_embedding": [ids["memories"][index] for index in WITHOUT_EMBEDDING],
        "without_persona": [ids["memories"][index] for index in WITHOUT_PERSONA],
    }
    execute(url, "UPDATE memories SET embedding = NULL WHERE id = ANY(%s)", [gaps["without_embedding"]])
    execute(url, "UPDATE memories SET persona_id = NULL WHERE id = ANY(%s)", [gaps["without_persona"]])
    return gaps


def execute(url: str, sql: str, params=()) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)
