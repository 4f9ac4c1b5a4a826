"""The audit trail: who did what to which object, when, in which namespace; append-only, and never content."""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.models import choices_check

from .choices import ActorKind, AuditAction
from .querysets import AuditEntryQuerySet


class AuditEntry(models.Model):
    """One recorded action, written by `audit.services.record` in the transaction of the change it records.

    Entries name objects by id and keep what changed (access levels, namespaces, roles, field names), never what
    a memory says: deleting a memory erases its content everywhere, and its audit entries keep only ids. Nothing
    here is a foreign key, so entries outlive the agents, namespaces and memories they name. Rows are never
    updated or deleted: the agent database role holds no grant on the table, and a trigger refuses UPDATE and
    DELETE for every role (migration audit/0001).
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    # agent_id of an agent, "operator:<username>", or null for the system (jobs, commands, scripts).
    actor = models.CharField(max_length=200, null=True, blank=True, db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    action = models.CharField(max_length=64, choices=AuditAction.choices, db_index=True)
    # The object's model label ("memories.memory", "agents.agent", ...) and primary key.
    object_type = models.CharField(max_length=100, blank=True, default="")
    object_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    # The namespace the action happened in: who may read the entry (access.audit_visibility_q). The path is
    # the one the namespace had at the time.
    namespace_id = models.UUIDField(null=True, blank=True)
    namespace_path = models.CharField(max_length=600, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True, default="")

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        db_table = "audit_entries"
        ordering = ["-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["namespace_id", "-id"], name="audit_entries_namespace_idx")]
        constraints = [
            choices_check("action", AuditAction, "audit_entries_action_valid"),
            choices_check("actor_kind", ActorKind, "audit_entries_actor_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor or 'system'} {self.action} {self.object_id}"
