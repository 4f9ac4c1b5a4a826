"""The list filters of tasks and workflows: one declaration for the REST API's query parameters and the MCP list tools."""
from __future__ import annotations

from django_filters import rest_framework as filters

from .models import Task, Workflow


class TaskFilter(filters.FilterSet):
    namespace = filters.CharFilter(field_name="namespace__namespace")
    assigned_agent_id = filters.CharFilter(field_name="assigned_agent__agent_id")
    tag = filters.CharFilter(method="filter_tag")

    class Meta:
        model = Task
        fields = ["status", "priority", "task_type", "assigned_agent_id", "namespace", "tag"]

    def filter_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value])


class WorkflowFilter(filters.FilterSet):
    namespace = filters.CharFilter(field_name="namespace__namespace")
    created_by = filters.CharFilter(field_name="created_by__agent_id")
    tag = filters.CharFilter(method="filter_tag")

    class Meta:
        model = Workflow
        fields = ["status", "workflow_type", "namespace", "created_by", "tag"]

    def filter_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value])
