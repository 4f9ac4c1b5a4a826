from __future__ import annotations

from rest_framework import serializers

from ..models import Namespace, Role


class NamespaceSerializer(serializers.ModelSerializer):
    parent_namespace = serializers.SlugRelatedField(source="parent", slug_field="namespace", read_only=True, allow_null=True)

    class Meta:
        model = Namespace
        fields = [
            "id", "namespace", "display_name", "description", "access_policy", "parent_namespace", "path", "depth",
            "metadata", "created_at", "updated_at",
        ]
        read_only_fields = fields


class MemberSerializer(serializers.Serializer):
    """An agent's role in a namespace."""

    agent_id = serializers.CharField(read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
