"""The list filters of memories: one declaration for the REST API's query parameters and the MCP list tools."""
from __future__ import annotations

from django_filters import rest_framework as filters

from .models import Memory


class MemoryFilter(filters.FilterSet):
    namespace = filters.CharFilter(field_name="namespace__namespace")
    agent_id = filters.CharFilter(field_name="agent__agent_id")
    tag = filters.CharFilter(method="filter_tag")
    parent = filters.UUIDFilter(field_name="parent_memory_id")

    class Meta:
        model = Memory
        fields = ["namespace", "agent_id", "access_level", "memory_category", "embedding_status", "tag", "parent"]

    def filter_tag(self, queryset, name, value):
        return queryset.filter(context_tags__contains=[value])
