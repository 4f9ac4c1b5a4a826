from __future__ import annotations

from rest_framework import serializers

from ..models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    namespace = serializers.CharField(source="namespace_path", read_only=True,
                                      help_text="The namespace's path at the time; empty when none.")
    before = serializers.JSONField(read_only=True, allow_null=True, help_text="Ids, levels, roles, names, counts; never content.")
    after = serializers.JSONField(read_only=True, allow_null=True, help_text="Ids, levels, roles, names, counts; never content.")

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "actor_kind", "action", "object_type", "object_id", "namespace", "namespace_id",
                  "before", "after", "request_id"]
        read_only_fields = fields
