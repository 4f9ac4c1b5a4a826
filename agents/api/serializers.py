from __future__ import annotations

from rest_framework import serializers

from ..models import Agent


class AgentSerializer(serializers.ModelSerializer):
    namespace = serializers.SlugRelatedField(slug_field="namespace", read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id", "agent_id", "display_name", "agent_type", "capabilities", "configuration", "namespace",
            "access_level", "is_active", "last_activity", "metadata", "created_at", "updated_at",
        ]
        read_only_fields = fields


class AgentWithKeySerializer(AgentSerializer):
    api_key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "api_key"]
        read_only_fields = fields


class PurgeCountsSerializer(serializers.Serializer):
    memories = serializers.IntegerField(help_text="Memories erased (private ones, and the rest unless handed over).")
    handed_over = serializers.IntegerField(help_text="Shared, public and system memories given to hand_to.")
    versions = serializers.IntegerField(help_text="History versions erased.")
    shares_granted_to_it = serializers.IntegerField()
    shares_of_its_memories = serializers.IntegerField()
    votes = serializers.IntegerField()
    keys = serializers.IntegerField()
    memberships = serializers.IntegerField()


class PurgeReportSerializer(serializers.Serializer):
    agent_id = serializers.CharField()
    dry_run = serializers.BooleanField()
    hand_to = serializers.CharField(allow_null=True)
    counts = PurgeCountsSerializer()
