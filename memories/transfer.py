"""Export and import of memories as JSON Lines: a header line, then one line per memory (docs/lifecycle.md).

An export reads the live tables only, so a deleted memory leaves nothing in an export made after it. It reads
a chunk of memories at a time in the order they were written, each line carrying what another installation
needs to recreate the memory: its owner and the agents it is shared with (created there when missing), the
namespaces it names with their policies, its embedding with the model that made it, and its history.

An import keeps ids (a memory whose id is taken by other content gets an id derived from it, the same on every
run), keeps embeddings made by the model this installation runs (others are embedded again), writes each
memory's shares and history as the file has them, and works in batches of one transaction each. Run again after
an interruption, it skips what is there already: nothing is imported or created twice.
"""
from __future__ import annotations

import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

import access
import audit
from agents.contracts import DEFAULT_AGENT_TYPE, RegisterAgent
from agents.models import Agent
from agents.services import register_agent
from core.db import agent_context
from core.errors import Forbidden, InvalidInput, ServiceError
from core.principal import forget_namespace_sets
from namespaces.contracts import AddMember, CreateNamespace
from namespaces.models import (
    PATH_SEPARATOR,
    ROLE_PERMISSIONS,
    AccessPolicy,
    Namespace,
    NamespaceUserObjectPermission,
    Role,
)
from namespaces.services import add_member, create_namespace, get_agent

from .choices import AccessLevel, EmbeddingStatus
from .contracts import (
    TRANSFER_FORMAT,
    TRANSFER_VERSION,
    ExportMemories,
    TransferAgent,
    TransferHeader,
    TransferNamespace,
    TransferredMemory,
)
from .embeddings import configured_model
from .models import Memory, MemoryUserObjectPermission, MemoryVersion
from .tasks import enqueue_embedding

CONTENT_TYPE = "application/x-ndjson"
EXPORT_CHUNK_SIZE = 200
IMPORT_BATCH_SIZE = 500
# A memory whose id is taken by other content is imported under uuid5(this, its id): the same id on every run,
# so a second run finds the copy the first one made.
MAPPED_ID_NAMESPACE = uuid.UUID("ee1af554-77a6-4930-a677-8b77506453ac")


# --- Export ---------------------------------------------------------------------------------------------------

@dataclass
class ExportPlan:
    """What an export reads, for whom; checked before the first line is written."""

    principal: access.Principal
    memories: QuerySet
    scope: dict
    source: str
    # Namespace path -> its description (None: the exporter may not read it), filled as chunks name them.
    namespaces: dict = field(default_factory=dict)


def export_plan(actor, data: ExportMemories, *, source: str) -> ExportPlan:
    """The memories `actor` exports (access.memory_export_q), narrowed by `data`; refusals raise before any output."""
    principal = access.Principal.of(actor)
    memories = Memory.objects.filter(access.memory_export_q(principal)).unexpired()
    if data.agent_id:
        agent = get_agent(data.agent_id)
        if not access.can_export_agent(principal, agent):
            raise Forbidden("Agents export their own memories only.", field="agent_id")
        memories = memories.filter(agent=agent)
    if data.namespace:
        namespace = _namespace_named(data.namespace)
        memories = memories.filter(Q(namespace__path=namespace.path)
                                   | Q(namespace__path__startswith=namespace.path + PATH_SEPARATOR))
    scope = {"namespace": data.namespace, "agent_id": data.agent_id}
    with transaction.atomic():
        audit.record(principal, audit.AuditAction.MEMORIES_EXPORT, object_type="memories.memory", after=scope)
    return ExportPlan(principal=principal, memories=memories, scope=scope, source=source)


def _namespace_named(value: str) -> Namespace:
    lookup = {"path": value} if PATH_SEPARATOR in value else {"namespace": value}
    namespace = Namespace.objects.filter(**lookup).first()
    if namespace is None:
        raise InvalidInput(f"Namespace '{value[:128]}' does not exist.", field="namespace", code="unknown_namespace")
    return namespace


def header(plan: ExportPlan) -> dict:
    principal = plan.principal
    if principal.system:
        exported_by = "system"
    elif principal.agent is not None:
        exported_by = principal.agent.agent_id
    else:
        exported_by = f"operator:{principal.user.get_username()}"
    return {
        "format": TRANSFER_FORMAT,
        "version": TRANSFER_VERSION,
        "embedding_model": configured_model().name,
        "embedding_dimensions": settings.TMWS_EMBEDDING_DIMENSIONS,
        "exported_at": timezone.now().isoformat(),
        "source": plan.source,
        "exported_by": exported_by,
        "scope": plan.scope,
    }


def export_lines(plan: ExportPlan, chunk_size: int = EXPORT_CHUNK_SIZE) -> Iterator[str]:
    """The header, then one line per memory (oldest first, in the order they were written), each ending in "\\n".

    An agent's export reads under its row-level-security context too. Chunks are read by key (the write
    sequence), so a long export holds no cursor open between them.
    """
    with agent_context(plan.principal.agent):
        yield json.dumps(header(plan), ensure_ascii=False) + "\n"
        last = None
        while True:
            rows = plan.memories.select_related("agent", "agent__namespace", "namespace").order_by("sequence")
            if last is not None:
                rows = rows.filter(sequence__gt=last)
            chunk = list(rows[:chunk_size])
            if not chunk:
                return
            yield from _chunk_lines(plan, chunk)
            last = chunk[-1].sequence


def _chunk_lines(plan: ExportPlan, chunk: list[Memory]) -> Iterator[str]:
    ids = [memory.pk for memory in chunk]
    shares = _shares(ids)
    history = _history(plan.principal, ids)
    agents = {memory.agent.pk: memory.agent for memory in chunk if memory.agent is not None}
    agents.update((agent.pk, agent) for sharees in shares.values() for agent in sharees)
    memberships = _memberships(plan.principal, agents.values())
    paths = {memory.namespace.path for memory in chunk}
    paths |= {agent.namespace.path for agent in agents.values()}
    paths |= {version.namespace.path for versions in history.values() for version in versions}
    paths |= {path for held in memberships.values() for path, _ in held}
    _describe_namespaces(plan, paths)
    for memory in chunk:
        named: set[str] = {memory.namespace.path}
        owner = None
        if memory.agent is not None:
            owner = _agent_entry(plan, memory.agent, memberships, named)
        sharees = [_agent_entry(plan, agent, memberships, named)
                   for agent in sorted(shares.get(memory.pk, []), key=lambda agent: agent.agent_id)]
        versions = [_version_entry(plan.principal, version, named) for version in history.get(memory.pk, [])]
        line = {
            "id": str(memory.pk),
            "content": memory.content,
            "agent": owner,
            "namespace": memory.namespace.path,
            "access_level": memory.access_level,
            "context_tags": memory.context_tags,
            "memory_category": memory.memory_category,
            "learning_weight": memory.learning_weight,
            "metadata": memory.metadata,
            "parent_memory_id": str(memory.parent_memory_id) if memory.parent_memory_id else None,
            "expires_at": _moment(memory.expires_at),
            "created_at": _moment(memory.created_at),
            "updated_at": _moment(memory.updated_at),
            "shares": sharees,
            "history": versions,
            "namespaces": _descriptions(plan, named),
            "embedding_model": (memory.embedding_model or None) if memory.embedding is not None else None,
        }
        text = json.dumps(line, ensure_ascii=False)
        yield f'{text[:-1]}, "embedding": {_vector_text(memory.embedding)}}}\n'


def _vector_text(vector) -> str:
    # Nine significant digits give back every float32 exactly: the import stores the very same vector.
    if vector is None:
        return "null"
    return "[" + ",".join(f"{value:.9g}" for value in vector) + "]"


def _moment(value) -> str | None:
    return value.isoformat() if value is not None else None


def _shares(ids) -> dict:
    """{memory id: [agents it is shared with one by one]}."""
    rows = MemoryUserObjectPermission.objects.filter(
        content_object_id__in=ids, permission__codename=access.SHARE_PERMISSION
    ).values_list("content_object_id", "user_id")
    by_user = defaultdict(list)
    for memory_id, user_id in rows:
        by_user[user_id].append(memory_id)
    shares = defaultdict(list)
    for agent in Agent.objects.select_related("namespace").filter(user_id__in=by_user):
        for memory_id in by_user[agent.user_id]:
            shares[memory_id].append(agent)
    return shares


def _history(principal, ids) -> dict:
    """{memory id: [its versions the exporter could read while they were current, oldest first]}."""
    versions = MemoryVersion.objects.visible_to(principal).for_display().filter(memory_id__in=ids).order_by(
        "memory_id", "version")
    history = defaultdict(list)
    for version in versions:
        # A version whose namespace is gone since cannot be recreated where it was: it is left out.
        if version.namespace is not None:
            history[version.memory_id].append(version)
    return history


def _memberships(principal, agents) -> dict:
    """{agent pk: [(namespace path, role)]} beyond the home namespace, as far as the exporter may know them.

    Operators and the system see the memberships in the namespaces they may list; an agent its own only.
    """
    agents = [agent for agent in agents if principal.agent is None or principal.is_agent(agent)]
    if not agents:
        return {}
    by_user = {agent.user_id: agent for agent in agents}
    grants = NamespaceUserObjectPermission.objects.filter(
        user_id__in=by_user, permission__codename__in=ROLE_PERMISSIONS.values())
    if principal.agent is None:
        grants = grants.filter(content_object__in=Namespace.objects.filter(access.namespace_visibility_q(principal)))
    roles = defaultdict(dict)
    for user_id, namespace_id, path, codename in grants.values_list(
            "user_id", "content_object_id", "content_object__path", "permission__codename"):
        agent = by_user[user_id]
        if namespace_id == agent.namespace_id:
            continue
        role = Role.ADMIN if codename == ROLE_PERMISSIONS[Role.ADMIN] else roles[agent.pk].get(path, Role.MEMBER)
        roles[agent.pk][path] = role
    return {pk: sorted(held.items()) for pk, held in roles.items()}


def _describe_namespaces(plan: ExportPlan, paths: set[str]) -> None:
    """Describe these namespaces and their ancestors, those the exporter may list (others: path only)."""
    wanted = set()
    for path in paths:
        parts = path.split(PATH_SEPARATOR)
        wanted |= {PATH_SEPARATOR.join(parts[:depth]) for depth in range(1, len(parts) + 1)}
    wanted -= plan.namespaces.keys()
    if not wanted:
        return
    plan.namespaces.update(dict.fromkeys(wanted))
    visible = Namespace.objects.filter(path__in=wanted).filter(access.namespace_visibility_q(plan.principal))
    for namespace in visible:
        plan.namespaces[namespace.path] = {
            "access_policy": namespace.access_policy, "display_name": namespace.display_name,
            "description": namespace.description,
        }


def _descriptions(plan: ExportPlan, paths: set[str]) -> dict:
    described = {}
    for path in sorted(paths):
        parts = path.split(PATH_SEPARATOR)
        for depth in range(1, len(parts) + 1):
            ancestor = PATH_SEPARATOR.join(parts[:depth])
            if plan.namespaces.get(ancestor) is not None:
                described[ancestor] = plan.namespaces[ancestor]
    return dict(sorted(described.items()))


def _agent_entry(plan: ExportPlan, agent: Agent, memberships: dict, named: set[str]) -> dict:
    entry = {
        "agent_id": agent.agent_id, "display_name": agent.display_name, "agent_type": agent.agent_type,
        "capabilities": agent.capabilities, "access_level": agent.access_level, "is_active": agent.is_active,
        "namespace": None,
    }
    if plan.namespaces.get(agent.namespace.path) is not None:
        entry["namespace"] = agent.namespace.path
        named.add(agent.namespace.path)
    held = memberships.get(agent.pk, [])
    if held:
        entry["memberships"] = [{"namespace": path, "role": role} for path, role in held]
        named.update(path for path, _ in held)
    return entry


def _version_entry(principal, version: MemoryVersion, named: set[str]) -> dict:
    named.add(version.namespace.path)
    return {
        "version": version.version, "change": version.change, "content": version.content,
        "access_level": version.access_level, "namespace": version.namespace.path,
        "agent_id": version.agent.agent_id if version.agent else None, "context_tags": version.context_tags,
        "memory_category": version.memory_category, "learning_weight": version.learning_weight,
        "changed_at": _moment(version.changed_at), "changed_by": _changed_by(principal, version),
    }


def _changed_by(principal, version: MemoryVersion) -> str | None:
    if version.changed_by_agent_id is not None:
        return version.changed_by_agent.agent_id if version.changed_by_agent else None
    if version.changed_by_user_id is not None:
        if version.changed_by_user is None or not access.can_see_operator_names(principal):
            return "operator"
        return f"operator:{version.changed_by_user.get_username()}"
    return None


# --- Import ---------------------------------------------------------------------------------------------------

def parse_header(number: int, item: dict) -> TransferHeader:
    try:
        return TransferHeader.parse(item)
    except InvalidInput as exc:
        raise InvalidInput(f"line {number}: {exc.message}", field=exc.field) from None


def parse_line(number: int, item: dict) -> TransferredMemory:
    try:
        return TransferredMemory.parse(item)
    except InvalidInput as exc:
        raise InvalidInput(f"line {number}: {exc.message}", field=exc.field) from None


@dataclass
class ImportSummary:
    imported: int = 0  # under their own id
    mapped: int = 0  # under a new id: theirs was taken by other content
    skipped: int = 0  # there already (the same id, or the id they were mapped to, with the same content)
    conflicts: int = 0  # --on-conflict skip: their id is taken by other content
    expired: int = 0
    agents_created: int = 0
    namespaces_created: int = 0
    to_embed: int = 0  # imported without their embedding: waiting for this installation's model
    shares_dropped: int = 0  # shared with an agent this installation lacks and the file does not describe
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


class Importer:
    """Imports the memory lines of one file, a batch (one transaction) at a time; `finish()` after the last."""

    def __init__(self, head: TransferHeader, on_conflict: str = "map"):
        self.on_conflict = on_conflict
        self.model = configured_model().name
        self.dimensions = settings.TMWS_EMBEDDING_DIMENSIONS
        self.summary = ImportSummary()
        self.same_model = head.embedding_model == self.model and head.embedding_dimensions == self.dimensions
        self.header = head
        if not self.same_model:
            self.summary.warn(
                f"The file's embeddings were made by {head.embedding_model or 'an unnamed model'} "
                f"({head.embedding_dimensions} dimensions); this installation embeds with {self.model} "
                f"({self.dimensions} dimensions). Its memories are imported without them and embedded again "
                "in the background.")
        self._namespaces: dict[str, Namespace] = {}
        self._agents: dict[str, Agent] = {}
        self._operators: dict[str, object] = {}
        self._targets: dict[uuid.UUID, uuid.UUID] = {}  # id in the file -> id here
        self._waiting: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)  # parent in the file -> children here
        self._conflicting: set[uuid.UUID] = set()
        self._share_permission = None
        self._positions = itertools.count()  # the order rows are inserted in: the file's

    # A batch ---------------------------------------------------------------------------------------------------

    @transaction.atomic
    def import_batch(self, lines: list[tuple[int, TransferredMemory]]) -> None:
        """Import parsed lines [(line number, line)] all or nothing; a refusal names its line."""
        lines = self._unexpired(lines, timezone.now())
        rows, versions, grants = {}, [], []
        for (number, line), (target, outcome) in zip(lines, self._decide_ids(lines), strict=True):
            if outcome == "conflict":
                continue
            self._targets[line.id] = target
            if outcome == "present":
                self.summary.skipped += 1
                continue
            try:
                rows[target] = self._row(line, target)
                versions += self._versions(line, target)
                grants += self._grants(line, target)
            except ServiceError as exc:
                raise type(exc)(f"line {number}: {exc.message}", field=exc.field, code=exc.code) from None
            if outcome == "mapped":
                self.summary.mapped += 1
            else:
                self.summary.imported += 1
        links = []
        for _, line in lines:  # a parent the file held before (or in this batch) is known; others are awaited
            child = self._targets.get(line.id)
            if child is None or line.parent_memory_id is None:
                continue
            parent = self._targets.get(line.parent_memory_id)
            if parent is None:
                self._waiting[line.parent_memory_id].append(child)
            elif child in rows:
                rows[child]["parent_memory_id"] = str(parent)
            else:
                links.append((child, parent))  # there already: linked now if an interrupted run could not
        self._insert(list(rows.values()))
        self._restore_history(rows.keys(), versions)
        if grants:
            MemoryUserObjectPermission.objects.bulk_create(grants, ignore_conflicts=True)
            forget_namespace_sets()
        self._link(links + self._waiting_children([line.id for _, line in lines if line.id in self._targets]))
        pending = [key for key, row in rows.items() if row["embedding"] is None]
        self.summary.to_embed += len(pending)
        enqueue_embedding(pending)

    def _unexpired(self, lines, now):
        kept = []
        for number, line in lines:
            if line.expires_at is not None and line.expires_at <= now:
                self.summary.expired += 1
            else:
                kept.append((number, line))
        return kept

    def _decide_ids(self, lines) -> list[tuple]:
        """(id here, outcome) of each line: new, mapped, present (the same content is there) or conflict.

        A line repeating an id earlier in the batch meets it as if it were stored already.
        """
        wanted = {line.id for _, line in lines} | {self._mapped(line.id) for _, line in lines}
        stored = dict(Memory.objects.filter(pk__in=wanted).values_list("pk", "content"))
        planned: dict[uuid.UUID, str] = {}
        decisions = []
        for _, line in lines:
            candidate = line.id
            while True:
                if candidate not in stored and candidate not in planned:
                    stored.update(Memory.objects.filter(pk=candidate).values_list("pk", "content"))
                content = planned.get(candidate, stored.get(candidate))
                if content is None:
                    decisions.append((candidate, "new" if candidate == line.id else "mapped"))
                    planned[candidate] = line.content
                    break
                if content == line.content:
                    decisions.append((candidate, "present"))
                    break
                if self.on_conflict == "skip":
                    decisions.append((None, "conflict"))
                    self._conflicting.add(line.id)
                    self.summary.conflicts += 1
                    break
                candidate = self._mapped(candidate)
        return decisions

    @staticmethod
    def _mapped(memory_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(MAPPED_ID_NAMESPACE, str(memory_id))

    def _row(self, line: TransferredMemory, target: uuid.UUID) -> dict:
        namespace = self._namespace(line.namespace, line.namespaces)
        owner = self._agent(line.agent, line.namespace, line.namespaces) if line.agent is not None else None
        if line.access_level != AccessLevel.SYSTEM and owner is None:
            raise InvalidInput("agent is required unless access_level is system.", field="agent")
        embedding = None
        if line.embedding is not None:
            if self.same_model and len(line.embedding) != self.header.embedding_dimensions:
                raise InvalidInput(f"embedding has {len(line.embedding)} numbers; the header says "
                                   f"{self.header.embedding_dimensions}.", field="embedding")
            if line.embedding_model == self.model and len(line.embedding) == self.dimensions:
                embedding = "[" + ",".join(map(repr, line.embedding)) + "]"
        return {
            "id": str(target), "content": line.content, "agent_id": str(owner.pk) if owner else None,
            "namespace_id": str(namespace.pk), "access_level": line.access_level,
            "context_tags": list(line.context_tags), "memory_category": line.memory_category,
            "learning_weight": line.learning_weight, "metadata": line.metadata, "parent_memory_id": None,
            "expires_at": _moment(line.expires_at),
            "created_at": _moment(line.created_at or timezone.now()),
            "updated_at": _moment(line.updated_at or line.created_at or timezone.now()),
            "embedding": embedding, "embedding_model": line.embedding_model if embedding else "",
            "embedding_status": EmbeddingStatus.READY if embedding else EmbeddingStatus.PENDING,
            "position": next(self._positions),
        }

    def _insert(self, rows: list[dict]) -> None:
        """One INSERT for the batch, in file order (which keeps the order memories were written in)."""
        if not rows:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {Memory._meta.db_table} (
                    id, created_at, updated_at, metadata, content, embedding, embedding_status, embedding_model,
                    embedding_error, embedding_attempts, agent_id, namespace_id, access_level, context_tags,
                    learning_weight, memory_category, expires_at, parent_memory_id)
                SELECT id, created_at, updated_at, metadata, content, embedding::vector, embedding_status,
                       embedding_model, '', 0, agent_id, namespace_id, access_level, context_tags, learning_weight,
                       memory_category, expires_at, parent_memory_id
                  FROM jsonb_to_recordset(%s::jsonb) AS row (
                       id uuid, created_at timestamptz, updated_at timestamptz, metadata jsonb, content text,
                       embedding text, embedding_status text, embedding_model text, agent_id uuid, namespace_id uuid,
                       access_level text, context_tags jsonb, learning_weight float8, memory_category text,
                       expires_at timestamptz, parent_memory_id uuid, position bigint)
                 ORDER BY position
                """,
                [json.dumps(rows)],
            )

    def _versions(self, line: TransferredMemory, target: uuid.UUID) -> list[MemoryVersion]:
        versions = []
        for version in line.history:
            namespace = self._namespace(version.namespace, line.namespaces)
            owner = self._existing_agent(version.agent_id)
            changed_by_agent, changed_by_user = self._changed_by(version.changed_by)
            versions.append(MemoryVersion(
                memory_id=target, version=version.version, change=version.change, content=version.content,
                access_level=version.access_level, namespace_id=namespace.pk, agent_id=owner.pk if owner else None,
                context_tags=list(version.context_tags), memory_category=version.memory_category,
                learning_weight=version.learning_weight, changed_at=version.changed_at,
                changed_by_agent=changed_by_agent, changed_by_user=changed_by_user,
            ))
        return versions

    @staticmethod
    def _restore_history(memory_ids, versions: list[MemoryVersion]) -> None:
        """The file's versions replace the one the insert trigger wrote (memories/0013), numbers and all."""
        replaced = {version.memory_id for version in versions}
        if replaced:
            MemoryVersion.objects.filter(memory_id__in=replaced & set(memory_ids)).delete()
            MemoryVersion.objects.bulk_create(versions)

    def _grants(self, line: TransferredMemory, target: uuid.UUID) -> list[MemoryUserObjectPermission]:
        grants = []
        for sharee in line.shares:
            agent = self._agent(sharee, None, line.namespaces)
            if agent is None:
                self.summary.shares_dropped += 1
                self.summary.warn(f"Agent '{sharee.agent_id}' does not exist here and the file does not say where "
                                  "it lives: memories shared with it are imported without that share.")
                continue
            grants.append(MemoryUserObjectPermission(
                content_object_id=target, user_id=agent.user_id, permission=self._permission()))
        return grants

    def _permission(self) -> Permission:
        if self._share_permission is None:
            self._share_permission = Permission.objects.get(
                codename=access.SHARE_PERMISSION, content_type=ContentType.objects.get_for_model(Memory))
        return self._share_permission

    def _waiting_children(self, file_ids) -> list[tuple]:
        """(child, parent) links of children imported before their parent, the parent now being known."""
        return [(child, self._targets[parent]) for parent in file_ids for child in self._waiting.pop(parent, [])]

    @staticmethod
    def _link(links) -> None:
        """Point children at their parents, once: only while they point nowhere."""
        if not links:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {Memory._meta.db_table} AS memory SET parent_memory_id = link.parent
                  FROM unnest(%s::uuid[], %s::uuid[]) AS link (child, parent)
                 WHERE memory.id = link.child AND memory.parent_memory_id IS NULL
                """,
                [[child for child, _ in links], [parent for _, parent in links]],
            )

    @transaction.atomic
    def finish(self) -> None:
        """Children whose parent the file did not hold point at it if this installation has it under that id."""
        waiting = {parent: children for parent, children in self._waiting.items() if parent not in self._conflicting}
        present = set(Memory.objects.filter(pk__in=waiting).values_list("pk", flat=True))
        self._link([(child, parent) for parent in present for child in waiting[parent]])
        self._waiting.clear()
        summary = self.summary
        with transaction.atomic():
            audit.record(access.SYSTEM, audit.AuditAction.MEMORIES_IMPORT, object_type="memories.memory", after={
                "imported": summary.imported, "mapped": summary.mapped, "skipped": summary.skipped,
                "conflicts": summary.conflicts, "agents_created": summary.agents_created,
                "namespaces_created": summary.namespaces_created})

    # Agents and namespaces -------------------------------------------------------------------------------------

    def _namespace(self, path: str, described: dict[str, TransferNamespace]) -> Namespace:
        """The namespace named by the path's last slug here, created (with its ancestors) when missing."""
        slug = path.rsplit(PATH_SEPARATOR, 1)[-1]
        namespace = self._namespaces.get(slug)
        if namespace is not None:
            return namespace
        namespace = Namespace.objects.filter(namespace=slug).first()
        if namespace is None:
            parent = self._namespace(path.rsplit(PATH_SEPARATOR, 1)[0], described) if PATH_SEPARATOR in path else None
            description = described.get(path) or TransferNamespace()
            policy = description.access_policy
            if not access.policy_allowed_below(parent, policy):
                self.summary.warn(f"Namespace '{slug}' is created closed: it lies below a closed namespace here.")
                policy = AccessPolicy.CLOSED
            namespace = create_namespace(access.SYSTEM, CreateNamespace.parse({
                "namespace": slug, "parent_namespace": parent.namespace if parent else None,
                "access_policy": policy, "display_name": description.display_name,
                "description": description.description,
            }))
            self.summary.namespaces_created += 1
        elif namespace.path != path:
            self.summary.warn(f"Namespace '{slug}' is at '{namespace.path}' here and at '{path}' in the file: "
                              "its memories go to the one here.")
        self._namespaces[slug] = namespace
        return namespace

    def _agent(self, described: TransferAgent, home: str | None, namespaces: dict) -> Agent | None:
        """The agent of that agent_id here; registered when missing and the file says where it lives (else None)."""
        agent = self._existing_agent(described.agent_id)
        if agent is not None:
            return agent
        home = described.namespace or home
        if home is None:
            return None
        home_namespace = self._namespace(home, namespaces)
        agent, _ = register_agent(access.SYSTEM, RegisterAgent.parse({
            "agent_id": described.agent_id, "namespace": home_namespace.namespace,
            "display_name": described.display_name, "agent_type": described.agent_type or DEFAULT_AGENT_TYPE,
            "capabilities": described.capabilities, "access_level": described.access_level,
            "is_active": described.is_active,
        }))
        for membership in described.memberships:
            namespace = self._namespace(membership.namespace, namespaces)
            if namespace.pk != home_namespace.pk:
                add_member(access.SYSTEM, namespace, AddMember.parse({"agent_id": agent.agent_id,
                                                                      "role": membership.role}))
        self.summary.agents_created += 1
        self._agents[agent.agent_id] = agent
        return agent

    def _existing_agent(self, agent_id: str | None) -> Agent | None:
        if not agent_id:
            return None
        if agent_id not in self._agents:
            agent = Agent.objects.select_related("user").filter(agent_id=agent_id).first()
            if agent is None:
                return None
            self._agents[agent_id] = agent
        return self._agents[agent_id]

    def _changed_by(self, changed_by: str | None) -> tuple:
        """(agent, operator user) a version names, as far as this installation has them."""
        if not changed_by or changed_by == "operator":
            return None, None
        if changed_by.startswith("operator:"):
            username = changed_by.removeprefix("operator:")
            if username not in self._operators:
                self._operators[username] = get_user_model().objects.filter(
                    username=username, agent__isnull=True).first()
            return None, self._operators[username]
        return self._existing_agent(changed_by), None
