from __future__ import annotations

from rest_framework import serializers

from ..models import Agent, AgentAccessLevel


class AgentSerializer(serializers.ModelSerializer):
    namespace = serializers.SlugRelatedField(slug_field="namespace", read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id", "agent_id", "display_name", "agent_type", "capabilities", "configuration", "namespace",
            "access_level", "is_active", "last_activity", "metadata", "created_at", "updated_at",
        ]
        read_only_fields = fields


class AgentCreateSerializer(serializers.Serializer):
    agent_id = serializers.CharField(max_length=128)
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    agent_type = serializers.CharField(max_length=64, required=False, default="language_model")
    capabilities = serializers.DictField(required=False, default=dict)
    configuration = serializers.DictField(required=False, default=dict)
    namespace = serializers.CharField(max_length=64)
    access_level = serializers.ChoiceField(choices=AgentAccessLevel.choices, required=False, default="standard")
    metadata = serializers.DictField(required=False, default=dict)


class AgentUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    agent_type = serializers.CharField(max_length=64, required=False)
    capabilities = serializers.DictField(required=False)
    configuration = serializers.DictField(required=False)
    namespace = serializers.CharField(max_length=64, required=False)
    access_level = serializers.ChoiceField(choices=AgentAccessLevel.choices, required=False)
    is_active = serializers.BooleanField(required=False)
    metadata = serializers.DictField(required=False)


class AgentWithKeySerializer(AgentSerializer):
    api_key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "api_key"]
        read_only_fields = fields
