"""Memories: what agents remember, with an embedding for meaning and a text-search vector for words."""
from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Func, Q, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from pgvector.django import HnswIndex, VectorField

from core.models import BaseModel, choices_check

from .choices import AccessLevel, EmbeddingStatus, UsageKind
from .querysets import MemoryQuerySet, MemoryVersionQuerySet

EMBEDDING_DIMENSIONS = 384
TEXT_SEARCH_CONFIG = "english"
SEQUENCE_NAME = "memories_sequence"


def preview(text: str) -> str:
    """A memory's content on one line, cut at 80 characters."""
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:79] + "…"


class Memory(BaseModel):
    """One remembered piece of text, owned by an agent (or by the system) inside a namespace."""

    content = models.TextField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True, editable=False)
    embedding_status = models.CharField(
        max_length=16, choices=EmbeddingStatus.choices, default=EmbeddingStatus.PENDING, db_index=True
    )
    # The model that made `embedding` (embeddings.EmbeddingModel.name): vectors of different models are
    # not comparable, so semantic ranking reads only rows of the configured model. Empty: no embedding.
    embedding_model = models.CharField(max_length=100, blank=True, default="", db_default="", editable=False)
    embedding_error = models.TextField(blank=True, editable=False)
    embedding_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="memories"
    )
    namespace = models.ForeignKey("namespaces.Namespace", on_delete=models.PROTECT, related_name="memories")
    access_level = models.CharField(max_length=16, choices=AccessLevel.choices, default=AccessLevel.PRIVATE)
    context_tags = models.JSONField(default=list, blank=True)
    learning_weight = models.FloatField(default=1.0)
    memory_category = models.CharField(max_length=64, default="general")
    # From this moment on the memory is never returned (memories.querysets.unexpired); a job deletes it.
    expires_at = models.DateTimeField(null=True, blank=True)
    # The database clears the link (ON DELETE SET NULL, migration 0007): it reaches children the
    # deleting agent cannot see, which an UPDATE issued by Django under row-level security would not.
    parent_memory = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="children"
    )
    # Set when a merge folded this memory into another (memories.consolidation): a retired memory is
    # never returned, keeps its history, can be restored, and is deleted with the memory it went into
    # (ON DELETE CASCADE in the database, migration 0015, which reaches rows the deleting agent cannot see).
    retired_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="merged_originals", editable=False,
    )
    search_vector = models.GeneratedField(
        expression=SearchVector("content", config=TEXT_SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    # Conversation order (docs/search.md, "Neighbouring turns"): the order memories were written in,
    # and the session they belong to, named by the writer in metadata.session_id (or session_date).
    # A memory's neighbours are the memories just before and after it in the same session of the
    # same agent and namespace; hybrid search reads them as the memory's context.
    sequence = models.BigIntegerField(
        db_default=Func(Value(SEQUENCE_NAME), function="nextval", output_field=models.BigIntegerField()),
        editable=False,
    )
    session_key = models.GeneratedField(
        expression=Coalesce(KT("metadata__session_id"), KT("metadata__session_date")),
        output_field=models.TextField(),
        db_persist=True,
    )

    objects = MemoryQuerySet.as_manager()

    class Meta:
        db_table = "memories"
        ordering = ["-created_at"]
        verbose_name_plural = "memories"
        # Deployment-wide counts (GET /metrics): give a monitoring user this permission and nothing else.
        permissions = [("view_metrics", "Can read the deployment-wide metrics")]
        indexes = [
            HnswIndex(
                name="memories_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["agent", "created_at"], name="memories_agent_idx"),
            # An owner's memories ranked exactly from this index alone (memories.search.semantic_ranking): the
            # vectors and every column the read rule and the search filters test, so no row is fetched.
            models.Index(
                fields=["agent"], name="memories_owner_vectors",
                include=["access_level", "namespace", "id", "retired_into", "expires_at", "embedding_model", "embedding"],
            ),
            models.Index(fields=["namespace", "access_level"], name="memories_namespace_idx"),
            models.Index(fields=["access_level"], name="memories_access_level_idx"),
            models.Index(fields=["memory_category"], name="memories_category_idx"),
            models.Index(fields=["expires_at"], name="memories_expiry_idx", condition=Q(expires_at__isnull=False)),
            models.Index(fields=["retired_into"], name="memories_retired_idx", condition=Q(retired_into__isnull=False)),
            GinIndex(fields=["context_tags"], name="memories_tags_gin"),
            GinIndex(fields=["search_vector"], name="memories_search_gin"),
            models.Index(
                fields=["agent", "namespace", "session_key", "sequence"],
                name="memories_session_idx",
                condition=Q(session_key__isnull=False),
            ),
        ]
        constraints = [
            choices_check("access_level", AccessLevel, "memories_access_level_valid"),
            choices_check("embedding_status", EmbeddingStatus, "memories_embedding_status_valid"),
            models.CheckConstraint(condition=~models.Q(content__regex=r"^\s*$"), name="memories_content_not_blank"),
            models.CheckConstraint(
                condition=models.Q(embedding__isnull=True) | ~models.Q(embedding_model=""),
                name="memories_embedding_names_its_model",
            ),
            models.CheckConstraint(
                condition=models.Q(access_level=AccessLevel.SYSTEM) | models.Q(agent__isnull=False),
                name="memories_owner_unless_system",
            ),
        ]

    def __str__(self) -> str:
        return self.preview

    @property
    def preview(self) -> str:
        return preview(self.content)

    @property
    def access_count(self) -> int:
        usage = self.usage_or_none
        return usage.access_count if usage else 0

    @property
    def last_accessed_at(self):
        usage = self.usage_or_none
        return usage.last_accessed_at if usage else None

    def has_no_usage_yet(self) -> None:
        """Record that this (new) memory has no hit counters, sparing a query when it is shown."""
        type(self).usage.related.set_cached_value(self, None)

    @property
    def usage_or_none(self) -> MemoryUsage | None:
        """The hit counters (select_related("usage") reads them with the memory); None before the first hit."""
        try:
            return self.usage
        except MemoryUsage.DoesNotExist:
            return None


class MemoryFeedback(BaseModel):
    """One reader's vote on whether a memory helped: one per reader and memory, a new vote replaces it."""

    memory = models.ForeignKey(Memory, on_delete=models.CASCADE, related_name="feedback")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_feedback")
    useful = models.BooleanField()

    class Meta:
        db_table = "memory_feedback"
        constraints = [models.UniqueConstraint(fields=["memory", "voter"], name="memory_feedback_one_vote")]

    def __str__(self) -> str:
        return f"{'useful' if self.useful else 'not useful'}: {self.memory_id}"


class VersionChange(models.TextChoices):
    CREATE = "create", "Created"
    UPDATE = "update", "Changed"
    RESTORE = "restore", "Restored"
    MERGE = "merge", "Merged"


class MemoryVersion(models.Model):
    """One state of a memory: written by a database trigger on every insert and on every change of content,
    access level, namespace, category, tags or weight, however the change was made (ORM, bulk, raw SQL).

    The trigger (migration memories/0013) numbers versions per memory and names who made the change
    (the agent of the request's row-level-security context, or the operator a service noted). Deleting
    the memory deletes its versions in the same statement: erased content leaves no copy here.
    """

    id = models.BigAutoField(primary_key=True)
    memory = models.ForeignKey(Memory, on_delete=models.DO_NOTHING, db_constraint=False, related_name="versions")
    version = models.PositiveIntegerField()
    change = models.CharField(max_length=16, choices=VersionChange.choices)
    content = models.TextField()
    access_level = models.CharField(max_length=16, choices=AccessLevel.choices)
    namespace = models.ForeignKey("namespaces.Namespace", on_delete=models.DO_NOTHING, db_constraint=False,
                                  related_name="+")
    agent = models.ForeignKey("agents.Agent", null=True, on_delete=models.DO_NOTHING, db_constraint=False,
                              related_name="+")
    context_tags = models.JSONField(default=list)
    memory_category = models.CharField(max_length=64)
    learning_weight = models.FloatField()
    changed_at = models.DateTimeField()
    changed_by_agent = models.ForeignKey("agents.Agent", null=True, on_delete=models.DO_NOTHING,
                                         db_constraint=False, related_name="+")
    changed_by_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING,
                                        db_constraint=False, related_name="+")

    objects = MemoryVersionQuerySet.as_manager()

    class Meta:
        db_table = "memory_versions"
        ordering = ["memory", "-version"]
        constraints = [models.UniqueConstraint(fields=["memory", "version"], name="memory_versions_unique")]

    def __str__(self) -> str:
        return f"{self.memory_id} v{self.version}"


class MemoryUsage(models.Model):
    """How often searches returned a memory, kept apart from the memory itself.

    A memory row is wide (content, embedding, text vector) and carries an HNSW index and two GIN
    indexes: counting a hit on it wrote a new version of the whole row and, mostly, new entries in
    every index (13 ms per 10 hits on 100k memories, competing with searches for the CPU). Here a
    hit is a small upsert into a narrow table.
    """

    memory = models.OneToOneField(Memory, primary_key=True, on_delete=models.CASCADE, related_name="usage")
    access_count = models.PositiveIntegerField(default=0)
    last_accessed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "memory_usage"
        verbose_name_plural = "memory usage"

    def __str__(self) -> str:
        return f"{self.memory_id}: {self.access_count} hits"


class MemoryUserObjectPermission(UserObjectPermissionBase):
    """Direct-FK guardian permissions on memories: explicit shares (`view_memory`)."""

    content_object = models.ForeignKey(Memory, on_delete=models.CASCADE)


class MemoryGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Memory, on_delete=models.CASCADE)



class WeightDecay(models.Model):
    """When the weights of an agent's memories last decayed (memories.decay): the next run decays by the time since."""

    agent = models.OneToOneField("agents.Agent", primary_key=True, on_delete=models.CASCADE, related_name="+")
    decayed_at = models.DateTimeField()

    class Meta:
        db_table = "memory_weight_decay"

    def __str__(self) -> str:
        return f"{self.agent_id}: {self.decayed_at:%Y-%m-%d %H:%M}"


class UsageEvent(models.Model):
    """One compact row per search, or per use of a memory a search may have returned (read, feedback, task).

    Written in bulk from the search-hit buffer (memories.hits), deleted after TMWS_USAGE_RETENTION_DAYS.
    A search row names the returned memories best first; a follow-up row names the one memory used. Rows
    keep ids and figures only: no query text unless TMWS_LOG_QUERIES is on (docs/learning.md).
    """

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=UsageKind.choices)
    # The acting agent; None for an operator's search. Its events go with it.
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    mode = models.CharField(max_length=16, blank=True, default="")  # searches: hybrid, semantic or keyword
    duration_ms = models.FloatField(null=True, blank=True)  # searches: time spent ranking, in milliseconds
    result_count = models.PositiveSmallIntegerField(default=0)
    memory_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    useful = models.BooleanField(null=True, blank=True)  # feedback: the vote
    query = models.TextField(blank=True, default="")  # searches, with TMWS_LOG_QUERIES=1 only

    class Meta:
        db_table = "memory_usage_events"
        ordering = ["-at"]
        indexes = [
            # Searches per day (counts, latency percentiles) and the retention sweep read by time.
            models.Index(fields=["kind", "at"], name="usage_events_kind_time_idx"),
            # The pattern job reads one agent's window.
            models.Index(fields=["agent", "at"], name="usage_events_agent_time_idx"),
        ]
        constraints = [choices_check("kind", UsageKind, "usage_events_kind_valid")]

    def __str__(self) -> str:
        return f"{self.kind} {self.at:%Y-%m-%d %H:%M:%S}"


class LearningPattern(models.Model):
    """What the nightly pattern job learned about one agent (memories.patterns), over a window of usage events.

    Readers other than the job never see these fields raw: memories.patterns.pattern_for narrows every id
    and label to what the reader may read.
    """

    agent = models.OneToOneField("agents.Agent", primary_key=True, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    events = models.PositiveIntegerField(default=0)  # usage events of the agent in the window
    memories = models.PositiveIntegerField(default=0)  # the agent's memories looked at
    topics = models.JSONField(default=list, blank=True)
    co_access = models.JSONField(default=list, blank=True)
    search_categories = models.JSONField(default=dict, blank=True)
    active_hours = models.JSONField(default=list, blank=True)
    stale = models.JSONField(default=dict, blank=True)
    returned = models.JSONField(default=list, blank=True)  # [id, times returned, times first, times used]
    returned_unused = models.JSONField(default=list, blank=True)
    missed_by_members = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "learning_patterns"
        ordering = ["agent"]

    def __str__(self) -> str:
        return f"{self.agent_id}: {self.window_end:%Y-%m-%d}"
