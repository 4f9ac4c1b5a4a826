"""Persona-era models kept for migration and the compatibility layer.

`Persona` is the persona-era table. The data migration compat/0002 turns every persona into an
Agent and records the pairing in `PersonaLink`; persona-era ownership (memory owner, task
assignee, workflow creator) is recorded in `PersonaOwnership`, so the v2 tables gain no columns
and the migration's reverse can restore what was there before. `ImportRun` and `ImportedRow`
are the resumable record of `manage.py migrate_personas_to_agents`.
"""
from __future__ import annotations

from django.db import models

from core.models import BaseModel, choices_check

from .adapter import PersonaRole, PersonaType


class Persona(BaseModel):
    """A fixed persona of the persona-era service (Athena, Artemis, ...)."""

    name = models.CharField(max_length=128, unique=True)
    type = models.CharField(max_length=16, choices=PersonaType.choices)
    role = models.CharField(max_length=16, choices=PersonaRole.choices)
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    specialties = models.JSONField(default=list, blank=True)
    config = models.JSONField(default=dict, blank=True)
    preferences = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    capabilities = models.JSONField(default=list, blank=True)
    total_tasks = models.PositiveIntegerField(default=0)
    successful_tasks = models.PositiveIntegerField(default=0)
    average_response_time = models.FloatField(null=True, blank=True)
    last_active_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "compat_persona"
        ordering = ["name"]
        constraints = [
            choices_check("type", PersonaType, "compat_persona_type_valid"),
            choices_check("role", PersonaRole, "compat_persona_role_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class PersonaLink(BaseModel):
    """Which agent a persona became, and whether the migration created it (so the reverse may remove it)."""

    persona = models.OneToOneField(Persona, on_delete=models.CASCADE, related_name="link")
    agent = models.OneToOneField(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="persona_link"
    )
    agent_created = models.BooleanField(default=False)

    class Meta:
        db_table = "compat_persona_link"

    def __str__(self) -> str:
        return f"{self.persona} -> {self.agent or '-'}"


class OwnershipKind(models.TextChoices):
    MEMORY_OWNER = "memory_owner", "Memory owner"
    TASK_ASSIGNEE = "task_assignee", "Task assignee"
    WORKFLOW_CREATOR = "workflow_creator", "Workflow creator"


class PersonaOwnership(BaseModel):
    """A persona-era link from a persona to a memory, task or workflow.

    `rewired` says the data migration pointed the object at the persona's agent;
    `previous_agent_id` is what the object pointed at before, restored by the reverse.
    """

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="ownerships")
    kind = models.CharField(max_length=20, choices=OwnershipKind.choices)
    memory = models.OneToOneField(
        "memories.Memory", null=True, blank=True, on_delete=models.CASCADE, related_name="persona_ownership"
    )
    task = models.OneToOneField(
        "workflows.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="persona_ownership"
    )
    workflow = models.OneToOneField(
        "workflows.Workflow", null=True, blank=True, on_delete=models.CASCADE, related_name="persona_ownership"
    )
    rewired = models.BooleanField(default=False)
    previous_agent_id = models.UUIDField(null=True, blank=True)

    class Meta:
        db_table = "compat_persona_ownership"
        constraints = [
            choices_check("kind", OwnershipKind, "compat_ownership_kind_valid"),
            models.CheckConstraint(
                condition=(
                    models.Q(kind="memory_owner", memory__isnull=False, task__isnull=True, workflow__isnull=True)
                    | models.Q(kind="task_assignee", memory__isnull=True, task__isnull=False, workflow__isnull=True)
                    | models.Q(kind="workflow_creator", memory__isnull=True, task__isnull=True,
                               workflow__isnull=False)
                ),
                name="compat_ownership_one_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.persona} {self.kind}"


class ImportStatus(models.TextChoices):
    RUNNING = "running", "Running (or interrupted)"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"


class ImportRun(BaseModel):
    """One run of migrate_personas_to_agents against a source installation."""

    source = models.CharField(max_length=500, help_text="The source URL without its password.")
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.RUNNING)
    options = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "compat_import_run"
        ordering = ["-created_at"]
        constraints = [choices_check("status", ImportStatus, "compat_import_run_status_valid")]

    def __str__(self) -> str:
        return f"import {self.created_at:%Y-%m-%d %H:%M} ({self.status})"


class SourceTable(models.TextChoices):
    PERSONAS = "personas", "personas"
    MEMORIES = "memories", "memories"
    TASKS = "tasks", "tasks"
    WORKFLOWS = "workflows", "workflows"


class ImportedRow(models.Model):
    """A source row already imported: written in the same transaction as the row itself, so a re-run skips it."""

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="rows")
    source_table = models.CharField(max_length=16, choices=SourceTable.choices)
    source_id = models.UUIDField()
    target_id = models.UUIDField()
    created = models.BooleanField(default=True, help_text="False when an existing target row was linked, not made.")
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "compat_imported_row"
        constraints = [
            models.UniqueConstraint(fields=["source_table", "source_id"], name="compat_imported_row_unique"),
            choices_check("source_table", SourceTable, "compat_imported_row_table_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.source_table}:{self.source_id}"
