"""The list filters of the audit trail (GET /api/v2/audit)."""
from __future__ import annotations

from django_filters import rest_framework as filters

from .choices import ActorKind, AuditAction
from .models import AuditEntry


class AuditEntryFilter(filters.FilterSet):
    action = filters.ChoiceFilter(choices=AuditAction.choices, help_text="One action, e.g. memory.share.")
    actor = filters.CharFilter(help_text="An agent id, or operator:<username>.")
    actor_kind = filters.ChoiceFilter(choices=ActorKind.choices)
    object_type = filters.CharFilter(help_text="A model label, e.g. memories.memory or agents.agent.")
    object_id = filters.CharFilter(help_text="The object's id (a memory's, an agent's or a namespace's UUID, ...).")
    since = filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte", help_text="Entries at or after this moment.")
    until = filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt", help_text="Entries before this moment.")

    class Meta:
        model = AuditEntry
        fields = ["action", "actor", "actor_kind", "object_type", "object_id", "since", "until"]
