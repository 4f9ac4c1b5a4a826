from __future__ import annotations

from rest_framework import serializers

from ..models import AccessPolicy, Namespace, Role


class NamespaceSerializer(serializers.ModelSerializer):
    parent_namespace = serializers.SlugRelatedField(source="parent", slug_field="namespace", read_only=True, allow_null=True)

    class Meta:
        model = Namespace
        fields = [
            "id", "namespace", "display_name", "description", "access_policy", "parent_namespace", "path", "depth",
            "metadata", "created_at", "updated_at",
        ]
        read_only_fields = fields


class NamespaceCreateSerializer(serializers.Serializer):
    namespace = serializers.CharField(max_length=200, allow_blank=True)
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    access_policy = serializers.ChoiceField(choices=AccessPolicy.choices, required=False, default=AccessPolicy.INVITE_ONLY)
    parent_namespace = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    metadata = serializers.DictField(required=False, default=dict)


class NamespaceUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    access_policy = serializers.ChoiceField(choices=AccessPolicy.choices, required=False)
    parent_namespace = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    metadata = serializers.DictField(required=False)


class MemberSerializer(serializers.Serializer):
    agent_id = serializers.CharField(max_length=128)
    role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.MEMBER)
