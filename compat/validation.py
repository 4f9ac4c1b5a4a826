"""Prove that a migration lost nothing: counts, owners, orphans, checksums and access rules.

`validate()` returns a list of checks, each with a name, whether it passed and a detail line.
Without a source URL it checks what the target alone can show (the data migration's links and
the import records); with one it also compares the source row by row.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from django.db import connection

import access
from agents.models import Agent
from memories.choices import AccessLevel
from memories.models import Memory
from workflows.models import Task, Workflow

from . import source as legacy
from .models import ImportedRow, ImportRun, ImportStatus, PersonaLink, PersonaOwnership, SourceTable
from .source import EXAMPLES

TARGET_MODELS = {"personas": Agent, "memories": Memory, "tasks": Task, "workflows": Workflow}
OWNERSHIP_FIELDS = {"memory_owner": ("memory", "agent_id"), "task_assignee": ("task", "assigned_agent_id"),
                    "workflow_creator": ("workflow", "created_by_id")}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _examples(values) -> str:
    values = [str(v) for v in values]
    return ", ".join(values[:EXAMPLES]) + (", ..." if len(values) > EXAMPLES else "")


def _count_check(name: str, bad: list, what: str, ok_detail: str) -> Check:
    if bad:
        return Check(name, False, f"{len(bad)} {what}, e.g. {_examples(bad)}")
    return Check(name, True, ok_detail)


def target_checks() -> list[Check]:
    checks = []
    # Data migration: every persona has its agent, every persona-era link points at it.
    unlinked = list(
        PersonaLink.objects.filter(agent__isnull=True).values_list("persona__name", flat=True)
    )
    from .models import Persona

    unlinked += list(Persona.objects.filter(link__isnull=True).values_list("name", flat=True))
    checks.append(_count_check("personas have agents", unlinked, "persona(s) without an agent",
                               f"{Persona.objects.count()} persona(s), each linked to an agent"))
    wrong = []
    for ownership in PersonaOwnership.objects.select_related("persona__link", "memory", "task", "workflow"):
        attribute, field = OWNERSHIP_FIELDS[ownership.kind]
        target = getattr(ownership, attribute)
        link = getattr(ownership.persona, "link", None)
        if not ownership.rewired or link is None or getattr(target, field) != link.agent_id:
            wrong.append(f"{ownership.kind}:{target.pk}")
    checks.append(_count_check("persona links rewired", wrong, "link(s) not pointing at the persona's agent",
                               f"{PersonaOwnership.objects.count()} persona-era link(s) point at their agents"))
    # Import records: each recorded row still exists.
    orphans = []
    for table, model in TARGET_MODELS.items():
        recorded = ImportedRow.objects.filter(source_table=table)
        present = set(model.objects.filter(pk__in=recorded.values("target_id")).values_list("pk", flat=True))
        orphans += [f"{table}:{t}" for t in recorded.values_list("target_id", flat=True) if t not in present]
    checks.append(_count_check("import records resolve", orphans, "recorded row(s) missing from the target",
                               f"{ImportedRow.objects.count()} imported row(s) all present"))
    ownerless = list(
        Memory.objects.filter(agent__isnull=True).exclude(access_level=AccessLevel.SYSTEM).values_list("pk", flat=True)
    )
    checks.append(_count_check("no orphaned memories", ownerless, "non-system memor(ies) without an owner",
                               "every non-system memory has an owner"))
    unfinished = list(ImportRun.objects.filter(status__in=[ImportStatus.RUNNING, ImportStatus.FAILED])
                      .values_list("pk", flat=True))
    if ImportRun.objects.filter(status=ImportStatus.COMPLETED).exists():
        unfinished = []  # a later completed run resumed the interrupted ones
    checks.append(_count_check("imports finished", unfinished, "unfinished import run(s) (re-run the import "
                               "to resume)", "no unfinished import run"))
    return checks


def _source_digests(conn, table: str, with_embedding: bool) -> dict:
    if table == "memories":
        embedding = "md5(embedding::text)" if with_embedding else "NULL"
        sql = f"SELECT id, md5(content), {embedding} FROM memories"
    elif table == "tasks":
        sql = "SELECT id, md5(title), NULL FROM tasks"
    else:
        sql = "SELECT id, md5(name), NULL FROM workflows"
    return {row[0]: (row[1], row[2]) for row in conn.execute(sql)}


def _target_digests(table: str, ids, with_embedding: bool) -> dict:
    column = {"memories": "content", "tasks": "title", "workflows": "name"}[table]
    embedding = "md5(embedding::text)" if with_embedding and table == "memories" else "NULL"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, md5({column}), {embedding} FROM {table} WHERE id = ANY(%s)", [list(ids)])
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}


def source_checks(conn) -> list[Check]:
    checks = []
    schema = legacy.read_schema(conn)
    run = ImportRun.objects.filter(status=ImportStatus.COMPLETED).order_by("-created_at").first()
    options = run.options if run else {}
    reembed = bool(options.get("reembed"))
    recorded = {
        table: dict(ImportedRow.objects.filter(source_table=table).values_list("source_id", "target_id"))
        for table in legacy.TABLES
    }
    # Counts per table.
    for table in legacy.TABLES:
        source_ids = {row[0] for row in conn.execute(f"SELECT id FROM {table}")}
        model = TARGET_MODELS[table]
        targets = recorded[table]
        present = set(model.objects.filter(pk__in=list(targets.values())).values_list("pk", flat=True))
        missing = sorted(str(s) for s in source_ids if s not in targets or targets[s] not in present)
        checks.append(Check(
            f"count {table}", not missing,
            f"source {len(source_ids)}, imported {len(source_ids) - len(missing)}"
            + (f"; missing e.g. {_examples(missing)}" if missing else ""),
        ))
    agents_by_persona = {s: t for s, t in recorded["personas"].items()}
    # Owners resolved.
    owner_wrong = []
    expected = dict(conn.execute("SELECT id, persona_id FROM memories").fetchall())
    actual = dict(Memory.objects.filter(pk__in=list(expected)).values_list("pk", "agent_id"))
    unowned_agent = options.get("unowned_agent")
    unowned_target = Agent.objects.filter(agent_id=unowned_agent).values_list("pk", flat=True).first()
    for memory_id, persona_id in expected.items():
        want = agents_by_persona.get(persona_id) if persona_id else unowned_target
        if memory_id in actual and (want is None or actual[memory_id] != want):
            owner_wrong.append(memory_id)
    checks.append(_count_check("memory owners resolved", owner_wrong, "memor(ies) not owned by their persona's agent",
                               f"{len(actual)} memories owned by their persona's agent"))
    assignee_wrong = []
    expected = dict(conn.execute("SELECT id, assigned_persona_id FROM tasks").fetchall())
    actual = dict(Task.objects.filter(pk__in=list(expected)).values_list("pk", "assigned_agent_id"))
    for task_id, persona_id in expected.items():
        want = agents_by_persona.get(persona_id) if persona_id else None
        if task_id in actual and actual[task_id] != want:
            assignee_wrong.append(task_id)
    checks.append(_count_check("task assignees resolved", assignee_wrong, "task(s) not assigned to their "
                               "persona's agent", f"{len(actual)} tasks assigned as in the source"))
    # Checksums.
    for table in ("memories", "tasks", "workflows"):
        with_embedding = table == "memories" and not reembed and schema.embedding_dimensions in (None, 384)
        source = _source_digests(conn, table, with_embedding)
        target = _target_digests(table, source.keys(), with_embedding)
        content_bad = [i for i, (c, _) in source.items() if i in target and target[i][0] != c]
        checks.append(_count_check(f"checksums {table}", content_bad, "row(s) whose text differs from the source",
                                   f"{len(target)} rows match the source (md5)"))
        if with_embedding:
            checks.append(_embedding_check(source, target))
    checks.append(access_check(options, list(recorded["memories"].values())))
    return checks


def _embedding_check(source: dict, target: dict) -> Check:
    """Copied embeddings must equal the source's; memories that had none were embedded by the import."""
    copied = {i: e for i, (_, e) in source.items() if i in target and e is not None}
    computed = [i for i, (_, e) in source.items() if i in target and e is None]
    vector_bad = [i for i, e in copied.items() if target[i][1] != e]
    still_pending = sum(target[i][1] is None for i in computed)
    detail = f"{len(copied)} embeddings match the source (md5)"
    if computed:
        detail += f"; {len(computed)} computed by the import for memories that had none"
        if still_pending:
            detail += f" ({still_pending} still pending)"
    return _count_check("checksums embeddings", vector_bad, "embedding(s) differing from the source", detail)


def access_check(options: dict, memory_ids: list) -> Check:
    """Imported memories sit where the options put them, their owners can read them and outsiders only what is public."""
    level = options.get("access_level", AccessLevel.SHARED)
    namespace = options.get("namespace")
    memories = Memory.objects.filter(pk__in=memory_ids)
    misplaced = list(memories.exclude(access_level=level).values_list("pk", flat=True))
    if namespace:
        misplaced += list(memories.exclude(namespace__namespace=namespace).values_list("pk", flat=True))
    hidden_from_owner = []
    owners = Counter(memories.values_list("agent_id", flat=True))
    for agent in Agent.objects.filter(pk__in=[o for o in owners if o]).select_related("user"):
        seen = memories.filter(agent=agent).filter(access.memory_visibility_q(agent)).count()
        if seen != owners[agent.pk]:
            hidden_from_owner.append(agent.agent_id)
    # An agent with no memberships and no shares: it must see exactly the public and system ones.
    outsider_agent = Agent(agent_id="validation-outsider", user_id=-1, namespace_id=None)
    outsider = access.Principal(user=None, agent=outsider_agent)
    leaked = memories.filter(access.memory_visibility_q(outsider)).exclude(
        access_level__in=[AccessLevel.PUBLIC, AccessLevel.SYSTEM]
    ).count()
    problems = []
    if misplaced:
        problems.append(f"{len(misplaced)} memor(ies) not at {level} in '{namespace}', e.g. {_examples(misplaced)}")
    if hidden_from_owner:
        problems.append(f"owners cannot read their memories: {_examples(hidden_from_owner)}")
    if leaked:
        problems.append(f"{leaked} non-public memor(ies) visible to an agent outside the namespace")
    if problems:
        return Check("access rules", False, "; ".join(problems))
    return Check("access rules", True, f"{memories.count()} memories at '{level}' in '{namespace}'; owners read "
                 "theirs; outsiders see none that are not public")


def validate(source_url: str | None = None) -> list[Check]:
    checks = target_checks()
    if source_url:
        with legacy.connect(source_url) as conn:
            checks += source_checks(conn)
    return checks


def as_json(checks: list[Check]) -> dict:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def as_text(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'OK  ' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.detail}" for c in checks]
    failed = sum(not c.ok for c in checks)
    lines.append("")
    lines.append("Migration valid: every check passed." if not failed else
                 f"Migration NOT valid: {failed} of {len(checks)} checks failed.")
    return "\n".join(lines)


__all__ = ["Check", "validate", "as_json", "as_text", "SourceTable"]
