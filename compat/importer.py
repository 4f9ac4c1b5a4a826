"""Import a persona-era installation into TMWS 2, resumably; and roll an import back.

Order: personas -> agents (with compat Persona rows and PersonaLinks), memories, tasks (then their
dependencies), workflows. Each batch is written in one transaction together with its
`ImportedRow` records, so an interrupted run leaves whole batches behind, each one recorded,
and the next run skips what is recorded. Ids and timestamps of the source rows are kept.
"""
from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.apps import apps as django_apps
from django.db import connection, transaction
from django.utils import timezone

from agents.models import Agent, ApiKey
from agents.services import NUMERIC_CONFIGURATION_KEYS
from memories.choices import AccessLevel, EmbeddingStatus
from memories.contracts import StoreMemory
from memories.embeddings import LEGACY_MODEL_NAME, configured_model
from memories.models import EMBEDDING_DIMENSIONS, Memory, MemoryUsage
from memories.tasks import enqueue_embedding
from namespaces.models import Namespace
from workflows.models import Task, Workflow

from . import source as legacy
from .adapter import LEGACY_NAMESPACE, MEMORY_LEGACY_KEY, importance_to_learning_weight, legacy_record
from .conversion import agent_for_persona_row, ensure_legacy_namespace
from .models import ImportedRow, ImportRun, ImportStatus, Persona, PersonaLink, SourceTable

DEFAULT_BATCH_SIZE = 500
PERSONA_FIELDS = ("name", "type", "role", "display_name", "description", "specialties", "config", "preferences",
                  "is_active", "capabilities", "total_tasks", "successful_tasks", "average_response_time",
                  "last_active_at", "metadata")
TARGET_MODELS = {"memories": Memory, "tasks": Task, "workflows": Workflow}


@dataclass
class ImportOptions:
    source_url: str
    namespace: str = LEGACY_NAMESPACE
    access_level: str = AccessLevel.SHARED
    batch_size: int = DEFAULT_BATCH_SIZE
    reembed: bool = False
    dry_run: bool = False
    keys_file: str | None = None
    unowned_agent: str | None = None

    @property
    def copies_embeddings(self) -> bool:
        """Source embeddings are copied only into a service running the model that made them."""
        return not self.reembed and configured_model().name == LEGACY_MODEL_NAME

    def recorded(self) -> dict:
        return {
            "namespace": self.namespace, "access_level": self.access_level, "batch_size": self.batch_size,
            "reembed": not self.copies_embeddings, "unowned_agent": self.unowned_agent,
        }


@dataclass
class ImportReport:
    source_counts: dict = field(default_factory=dict)
    already_imported: dict = field(default_factory=dict)
    imported: dict = field(default_factory=dict)
    keys_written: int = 0
    embeddings_copied: int = 0
    embeddings_pending: int = 0
    run_id: str | None = None
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)


class Progress:
    """A progress bar per table; silent when disabled (tests, --no-progress)."""

    def __init__(self, factory: Callable | None):
        self.factory = factory

    def bar(self, table: str, total: int):
        if self.factory is None:
            return _NullBar()
        return self.factory(table, total)


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def recorded_ids(table: str) -> set:
    return set(ImportedRow.objects.filter(source_table=table).values_list("source_id", flat=True))


def _check_target(conn, options: ImportOptions) -> None:
    """Refuse before writing when the target cannot take the rows (taken ids, unknown owner agent)."""
    problems = []
    for table, model in TARGET_MODELS.items():
        recorded = recorded_ids(table)
        ids = [row[0] for row in conn.execute(f"SELECT id FROM {table}")]
        taken = sorted(
            str(pk) for pk in model.objects.filter(pk__in=[i for i in ids if i not in recorded])
            .values_list("pk", flat=True)[:legacy.EXAMPLES + 1]
        )
        if taken:
            problems.append(f"{table}: ids already used in the target by rows this import did not write, "
                            f"e.g. {', '.join(taken[:legacy.EXAMPLES])}")
    if options.unowned_agent and not Agent.objects.filter(agent_id=options.unowned_agent).exists():
        persona_names = {row[0] for row in conn.execute("SELECT name FROM personas")}
        if options.unowned_agent not in persona_names:
            problems.append(f"--unowned-agent '{options.unowned_agent}' is neither an agent nor a source persona")
    if options.access_level not in AccessLevel.values:
        problems.append(f"--access-level must be one of {', '.join(AccessLevel.values)}")
    if options.access_level == AccessLevel.SYSTEM:
        problems.append("--access-level system is refused: system memories have no owner; pick shared or public")
    if problems:
        raise legacy.SourceError("The target cannot take this import (nothing was written):\n  - "
                                 + "\n  - ".join(problems), problems)


def run_import(options: ImportOptions, progress: Progress | None = None, log: Callable[[str], None] = print,
               fail_after_batches: int | None = None) -> ImportReport:
    """Import (or, with dry_run, plan) everything not yet imported. Raises SourceError before any write."""
    progress = progress or Progress(None)
    report = ImportReport(dry_run=options.dry_run)
    with legacy.connect(options.source_url) as conn:
        schema = legacy.read_schema(conn)
        report.source_counts = legacy.preflight(
            conn, schema, unowned_agent=options.unowned_agent, reembed=not options.copies_embeddings
        )
        _check_target(conn, options)
        skip = {table: recorded_ids(table) for table in legacy.TABLES}
        report.already_imported = {table: len(skip[table]) for table in legacy.TABLES}
        if options.dry_run:
            report.imported = {t: report.source_counts[t] - report.already_imported[t] for t in legacy.TABLES}
            return report
        if not options.keys_file:
            raise legacy.SourceError("--keys-file is required: new agents' API keys are written there, never printed.")
        run = ImportRun.objects.create(source=legacy.redact(options.source_url), options=options.recorded())
        report.run_id = str(run.pk)
        log(f"Import run {run.pk} started.")
        if not options.reembed and not options.copies_embeddings:
            log(f"The source's embeddings come from {LEGACY_MODEL_NAME}, the configured model is "
                f"{configured_model().name}: memories are queued for embedding instead.")
        writer = _Writer(run, options, report, fail_after_batches)
        try:
            writer.personas(conn, schema, skip["personas"], progress)
            writer.memories(conn, schema, skip["memories"], progress)
            writer.tasks(conn, schema, skip["tasks"], progress)
            writer.workflows(conn, schema, skip["workflows"], progress)
        except BaseException as exc:
            ImportRun.objects.filter(pk=run.pk).update(
                status=ImportStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], counts=report.imported
            )
            raise
        ImportRun.objects.filter(pk=run.pk).update(
            status=ImportStatus.COMPLETED, finished_at=timezone.now(), counts=report.imported
        )
    return report


class _Interrupted(Exception):
    """Raised by tests (fail_after_batches) to stand for a crash between batches."""


class _Writer:
    def __init__(self, run: ImportRun, options: ImportOptions, report: ImportReport, fail_after: int | None):
        self.run = run
        self.options = options
        self.report = report
        self.fail_after = fail_after
        self.batches = 0
        self.namespace: Namespace | None = None
        self.agents_by_persona: dict = {}

    def _batch_done(self) -> None:
        self.batches += 1
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise _Interrupted(f"interrupted after {self.batches} batch(es)")

    def _record(self, table: str, pairs: list[tuple], created: bool = True) -> None:
        ImportedRow.objects.bulk_create(
            [ImportedRow(run=self.run, source_table=table, source_id=s, target_id=t, created=created)
             for s, t in pairs]
        )
        self.report.imported[table] = self.report.imported.get(table, 0) + len(pairs)

    def _load_agent_map(self, conn) -> None:
        links = PersonaLink.objects.filter(agent__isnull=False).select_related("agent")
        self.agents_by_persona = {link.persona_id: link.agent for link in links}
        self.agents_by_name = {agent.agent_id: agent for agent in self.agents_by_persona.values()}

    # --- personas -------------------------------------------------------------------------
    def personas(self, conn, schema, skip: set, progress: Progress) -> None:
        with transaction.atomic():
            self.namespace = Namespace.objects.filter(namespace=self.options.namespace).first()
            if self.namespace is None:
                self.namespace = ensure_legacy_namespace(django_apps, self.options.namespace)
        total = self.report.source_counts["personas"] - len(skip)
        bar = progress.bar("personas", total)
        for batch in legacy.fetch(conn, schema, "personas", batch_size=self.options.batch_size, skip_ids=skip):
            keys = []
            with transaction.atomic():
                pairs_created, pairs_linked = [], []
                for row in batch:
                    values = {c: row[c] for c in PERSONA_FIELDS if row.get(c) is not None}
                    values.setdefault("role", _default_role(row.get("type")))
                    persona, _ = Persona.objects.update_or_create(id=row["id"], defaults=values)
                    Persona.objects.filter(pk=persona.pk).update(
                        created_at=row["created_at"], updated_at=row.get("updated_at") or row["created_at"]
                    )
                    source_values = {**{c: row.get(c) for c in row}, "role": values["role"]}
                    agent, created = agent_for_persona_row(django_apps, source_values, self.namespace)
                    PersonaLink.objects.update_or_create(
                        persona=persona, defaults={"agent": agent, "agent_created": created}
                    )
                    if created:
                        _, key = ApiKey.issue(agent.user, name="migration")
                        keys.append((agent.agent_id, key))
                        pairs_created.append((row["id"], agent.pk))
                    else:
                        pairs_linked.append((row["id"], agent.pk))
                self._record("personas", pairs_created)
                self._record("personas", pairs_linked, created=False)
            # Written after the commit: a key in the file always belongs to an agent that exists.
            self._write_keys(keys)
            bar.update(len(batch))
            self._batch_done()
        bar.close()
        self._load_agent_map(conn)

    def _write_keys(self, keys: list[tuple[str, str]]) -> None:
        if not keys:
            return
        path = self.options.keys_file
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            for agent_id, key in keys:
                handle.write(f"{agent_id}\t{key}\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.report.keys_written += len(keys)

    def _owner(self, persona_id):
        if persona_id is None:
            name = self.options.unowned_agent
            agent = self.agents_by_name.get(name) or Agent.objects.filter(agent_id=name).first()
            return agent
        return self.agents_by_persona[persona_id]

    # --- memories -------------------------------------------------------------------------
    def memories(self, conn, schema, skip: set, progress: Progress) -> None:
        level = self.options.access_level
        copy = self.options.copies_embeddings
        bar = progress.bar("memories", self.report.source_counts["memories"] - len(skip))
        for batch in legacy.fetch(conn, schema, "memories", batch_size=self.options.batch_size, skip_ids=skip):
            pending = []
            with transaction.atomic():
                built, usage = [], []
                for row in batch:
                    vector = legacy.parse_vector(row.get("embedding")) if copy else None
                    ready = vector is not None and len(vector) == EMBEDDING_DIMENSIONS
                    extra = {
                        "persona_id": str(row["persona_id"]) if row.get("persona_id") else None,
                        "importance": row.get("importance"),
                        "decay_rate": row.get("decay_rate"),
                        "recall_count": row.get("recall_count") or 0,
                        "last_recalled_at": _iso(row.get("last_recalled_at")),
                        "related_memories": [str(x) for x in (row.get("related_memories") or [])],
                        "context_type": row.get("context_type"),
                    }
                    data = StoreMemory.parse({
                        "content": row["content"], "access_level": level, "context_tags": row.get("tags"),
                        "memory_category": row.get("context_type") or None,
                        "learning_weight": importance_to_learning_weight(row.get("importance")),
                        "metadata": {**(row.get("metadata") or {}), MEMORY_LEGACY_KEY: extra},
                    }, path=f"memories.{row['id']}")
                    memory = Memory(
                        id=row["id"],
                        content=data.content,
                        embedding=vector if ready else None,
                        embedding_model=LEGACY_MODEL_NAME if ready else "",
                        embedding_status=EmbeddingStatus.READY if ready else EmbeddingStatus.PENDING,
                        agent=self._owner(row.get("persona_id")),
                        namespace=self.namespace,
                        access_level=data.access_level,
                        context_tags=data.context_tags,
                        learning_weight=data.learning_weight,
                        memory_category=data.memory_category,
                        metadata=data.metadata,
                    )
                    memory.created_at = row["created_at"]
                    memory.updated_at = row.get("updated_at") or row["created_at"]
                    built.append(memory)
                    if row.get("access_count") or row.get("accessed_at"):
                        usage.append(MemoryUsage(
                            memory=memory, access_count=row.get("access_count") or 0,
                            last_accessed_at=row.get("accessed_at"),
                        ))
                    if not ready:
                        pending.append(memory.pk)
                _insert_keeping_timestamps(built)
                MemoryUsage.objects.bulk_create(usage)
                self._record("memories", [(m.pk, m.pk) for m in built])
                self.report.embeddings_copied += len(built) - len(pending)
                self.report.embeddings_pending += len(pending)
                if pending:
                    enqueue_embedding(pending)
            bar.update(len(batch))
            self._batch_done()
        bar.close()
        self._decay_from_rates()

    def _decay_from_rates(self) -> None:
        """Persona-era memories lost importance at `decay_rate` per day: each persona's agent gets weight decay at
        the half-life of its memories' median rate (ln 2 / rate days), unless its configuration already names one."""
        for agent in {agent.pk: agent for agent in self.agents_by_persona.values()}.values():
            configuration = dict(agent.configuration or {})
            if "decay_half_life_days" in configuration:
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY rate) FROM (
                          SELECT (metadata -> %s ->> 'decay_rate')::float AS rate FROM {Memory._meta.db_table}
                           WHERE agent_id = %s AND jsonb_typeof(metadata -> %s -> 'decay_rate') = 'number') rates
                         WHERE rate > 0""",
                    [MEMORY_LEGACY_KEY, agent.pk, MEMORY_LEGACY_KEY],
                )
                rate = cursor.fetchone()[0]
            if rate:
                low, high = NUMERIC_CONFIGURATION_KEYS["decay_half_life_days"]
                configuration["decay_half_life_days"] = round(min(high, max(low, math.log(2) / rate)), 2)
                agent.configuration = configuration
                agent.save(update_fields=["configuration", "updated_at"])

    # --- tasks ----------------------------------------------------------------------------
    def tasks(self, conn, schema, skip: set, progress: Progress) -> None:
        bar = progress.bar("tasks", self.report.source_counts["tasks"] - len(skip))
        for batch in legacy.fetch(conn, schema, "tasks", batch_size=self.options.batch_size, skip_ids=skip):
            with transaction.atomic():
                built = []
                for row in batch:
                    persona_id = row.get("assigned_persona_id")
                    task = Task(
                        id=row["id"],
                        title=row["title"][:255],
                        description=row.get("description") or "",
                        task_type=(row.get("task_type") or "general")[:64],
                        status=row["status"],
                        priority=row.get("priority") or "medium",
                        progress=min(1.0, max(0.0, float(row.get("progress") or 0.0))),
                        assigned_agent=self.agents_by_persona.get(persona_id) if persona_id else None,
                        namespace=self.namespace,
                        tags=list(row.get("tags") or []),
                        result=row.get("result"),
                        error=row.get("error_message") or "",
                        started_at=row.get("started_at"),
                        completed_at=row.get("completed_at"),
                        retry_count=row.get("retry_count") or 0,
                        max_retries=row.get("max_retries") if row.get("max_retries") is not None else 3,
                        metadata={**(row.get("metadata") or {}), MEMORY_LEGACY_KEY: {
                            "assigned_persona_id": str(persona_id) if persona_id else None,
                            "dependencies": [str(d) for d in (row.get("dependencies") or [])],
                        }},
                    )
                    task.created_at = row["created_at"]
                    task.updated_at = row.get("updated_at") or row["created_at"]
                    built.append(task)
                _insert_keeping_timestamps(built)
                self._record("tasks", [(t.pk, t.pk) for t in built])
            bar.update(len(batch))
            self._batch_done()
        bar.close()
        self._task_dependencies()

    def _task_dependencies(self) -> None:
        """Dependencies may point at later tasks, so they are linked once every task exists (idempotently)."""
        Through = Task.dependencies.through
        imported = Task.objects.filter(
            pk__in=ImportedRow.objects.filter(source_table=SourceTable.TASKS).values("target_id")
        ).only("id", "metadata")
        existing = set(Task.objects.values_list("id", flat=True))
        links = []
        for task in imported:
            dependencies = legacy_record(task).get("dependencies")
            for dependency in dependencies if isinstance(dependencies, list) else []:
                try:
                    dependency_id = uuid.UUID(str(dependency))
                except ValueError:
                    continue
                if dependency_id in existing and dependency_id != task.pk:
                    links.append(Through(from_task_id=task.pk, to_task_id=dependency_id))
        with transaction.atomic():
            Through.objects.bulk_create(links, ignore_conflicts=True)

    # --- workflows ------------------------------------------------------------------------
    def workflows(self, conn, schema, skip: set, progress: Progress) -> None:
        bar = progress.bar("workflows", self.report.source_counts["workflows"] - len(skip))
        for batch in legacy.fetch(conn, schema, "workflows", batch_size=self.options.batch_size, skip_ids=skip):
            with transaction.atomic():
                built = []
                for row in batch:
                    legacy_fields = {
                        key: _iso(row.get(key)) if key.endswith("_at") else row.get(key)
                        for key in ("current_step_index", "started_at", "completed_at", "error_message",
                                    "failed_step_index", "created_by")
                    }
                    workflow = Workflow(
                        id=row["id"],
                        name=row["name"][:255],
                        description=row.get("description") or "",
                        workflow_type=row["workflow_type"],
                        status=row["status"],
                        steps=row.get("steps") or [],
                        config=row.get("config") or {},
                        tags=list(row.get("tags") or []),
                        namespace=self.namespace,
                        created_by=self._creator(row.get("created_by")),
                        execution_count=row.get("execution_count") or 0,
                        last_executed_at=row.get("last_executed_at"),
                        metadata={**(row.get("metadata") or {}), MEMORY_LEGACY_KEY: legacy_fields},
                    )
                    workflow.created_at = row["created_at"]
                    workflow.updated_at = row.get("updated_at") or row["created_at"]
                    built.append(workflow)
                _insert_keeping_timestamps(built)
                self._record("workflows", [(w.pk, w.pk) for w in built])
            bar.update(len(batch))
            self._batch_done()
        bar.close()

    def _creator(self, created_by):
        """`created_by` was free text in the persona era: a persona id or a persona name, or anything else."""
        if created_by in (None, ""):
            return None
        try:
            agent = self.agents_by_persona.get(uuid.UUID(str(created_by)))
        except ValueError:
            agent = None
        return agent or self.agents_by_name.get(str(created_by))


def _insert_keeping_timestamps(objects: list) -> None:
    """bulk_create, then write back the source timestamps that auto_now(_add) replaced on insert."""
    stamps = [(obj.created_at, obj.updated_at) for obj in objects]
    model = type(objects[0])
    model.objects.bulk_create(objects)
    for obj, (created_at, updated_at) in zip(objects, stamps, strict=True):
        obj.created_at, obj.updated_at = created_at, updated_at
    model.objects.bulk_update(objects, ["created_at", "updated_at"])


def _default_role(persona_type):
    from .adapter import DEFAULT_ROLE_FOR_TYPE

    return str(DEFAULT_ROLE_FOR_TYPE.get(persona_type, "strategist"))


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


# --- rollback -----------------------------------------------------------------------------

class RollbackRefused(Exception):
    pass


@transaction.atomic
def rollback_imports() -> dict:
    """Remove everything imports wrote (recorded in ImportedRow), newest tables first; agents last."""
    counts = {}
    for table, model in (("workflows", Workflow), ("tasks", Task), ("memories", Memory)):
        rows = ImportedRow.objects.filter(source_table=table, created=True)
        counts[table] = model.objects.filter(pk__in=rows.values("target_id")).delete()[1].get(
            model._meta.label, 0
        )
        ImportedRow.objects.filter(source_table=table).delete()
    persona_rows = ImportedRow.objects.filter(source_table=SourceTable.PERSONAS)
    created_agents = Agent.objects.filter(pk__in=persona_rows.filter(created=True).values("target_id"))
    for agent in created_agents:
        owned = Memory.objects.filter(agent=agent).count()
        if owned:
            raise RollbackRefused(
                f"Agent '{agent.agent_id}' owns {owned} memories written after the import; delete or reassign "
                "them first (nothing was rolled back)."
            )
    removed_agents = 0
    for agent in created_agents.select_related("user"):
        user = agent.user
        PersonaLink.objects.filter(agent=agent).delete()
        agent.delete()
        user.delete()
        removed_agents += 1
    source_ids = list(persona_rows.values_list("source_id", flat=True))
    PersonaLink.objects.filter(persona_id__in=source_ids).delete()
    Persona.objects.filter(pk__in=source_ids).delete()
    persona_rows.delete()
    counts["personas"] = removed_agents
    ImportRun.objects.exclude(status=ImportStatus.ROLLED_BACK).update(
        status=ImportStatus.ROLLED_BACK, finished_at=timezone.now()
    )
    return counts
