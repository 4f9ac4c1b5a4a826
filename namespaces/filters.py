"""The list filters of namespaces: one declaration for the REST API's query parameters and the MCP list tools."""
from __future__ import annotations

from django_filters import rest_framework as filters

from .models import Namespace


class NamespaceFilter(filters.FilterSet):
    parent_namespace = filters.CharFilter(field_name="parent__namespace")

    class Meta:
        model = Namespace
        fields = ["access_policy", "parent_namespace"]
