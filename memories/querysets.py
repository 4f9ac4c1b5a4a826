"""Read-side queries on memories; visibility always comes from access."""
from __future__ import annotations

from django.db import models
from django.db.models import Count, DateTimeField, Func, Min, Q

# Columns no API or MCP answer shows (the vector, the text-search document, the embedding error):
# reading them cost the transfer and, for the vector, parsing 384 floats per row.
UNDISPLAYED_COLUMNS = ("embedding", "search_vector", "embedding_error")


class StatementTimestamp(Func):
    """PostgreSQL's statement_timestamp(): unlike now(), it moves on within a transaction."""

    function = "statement_timestamp"
    template = "statement_timestamp()"
    output_field = DateTimeField()


class MemoryQuerySet(models.QuerySet):
    def for_display(self) -> MemoryQuerySet:
        """Memories as answers show them: owner, namespace and usage joined in, undisplayed columns left unread."""
        return self.select_related("agent", "namespace", "usage").defer(*UNDISPLAYED_COLUMNS)

    def visible_to(self, actor, *, current: bool = True) -> MemoryQuerySet:
        """Only the memories `actor` (agent, operator user or Principal) may read, and only current ones.

        `current=False` keeps expired and retired rows in: for search's rankings, whose page of results is
        then read through `current()` (the expiry test costs the rankings a scan of every candidate), and for
        the history and restoring of a memory a merge retired.
        """
        from access import memory_visibility_q

        queryset = self.filter(memory_visibility_q(actor))
        return queryset.current() if current else queryset

    def current(self) -> MemoryQuerySet:
        """Memories neither expired nor retired by a merge: what get, list and search return."""
        return self.unexpired().filter(retired_into__isnull=True)

    def unexpired(self) -> MemoryQuerySet:
        """Memories whose expiry has not come: by the database's clock at the start of the statement that reads."""
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=StatementTimestamp()))

    def expired(self) -> MemoryQuerySet:
        return self.filter(expires_at__lte=StatementTimestamp())

    def pending_embedding(self) -> MemoryQuerySet:
        from .choices import EmbeddingStatus

        return self.filter(embedding_status=EmbeddingStatus.PENDING)

    def embedded_by_configured_model(self) -> MemoryQuerySet:
        """Rows whose embedding the configured model made: the only ones a query vector may be compared with.

        Rows embedded by another model count as not embedded yet (keyword search still finds them).
        """
        from .embeddings import configured_model

        return self.filter(embedding__isnull=False, embedding_model=configured_model().name)

    def embedding_summary(self) -> dict:
        """{status: (memories, oldest updated_at)} in one query: counts, and how long pending rows have waited."""
        rows = self.order_by().values_list("embedding_status").annotate(n=Count("pk"), oldest=Min("updated_at"))
        return {status: (count, oldest) for status, count, oldest in rows}


class MemoryVersionQuerySet(models.QuerySet):
    def visible_to(self, actor) -> MemoryVersionQuerySet:
        """Only the versions `actor` could have read while they were current (access.memory_version_visibility_q)."""
        from access import memory_version_visibility_q

        return self.filter(memory_version_visibility_q(actor))

    def for_display(self) -> MemoryVersionQuerySet:
        return self.select_related("namespace", "agent", "changed_by_agent", "changed_by_user")
