"""The list filters of agents: one declaration for the REST API's query parameters and the MCP list tools."""
from __future__ import annotations

from django_filters import rest_framework as filters

from .models import Agent


class AgentFilter(filters.FilterSet):
    namespace = filters.CharFilter(field_name="namespace__namespace")
    capability = filters.CharFilter(method="filter_capability", label="has this capability key")

    class Meta:
        model = Agent
        fields = ["agent_type", "access_level", "is_active", "namespace"]

    def filter_capability(self, queryset, name, value):
        return queryset.filter(capabilities__has_key=value)
