"""Operator UI for tasks, workflows and their runs. Runs are records of execution and stay read-only."""
from __future__ import annotations

from django.contrib import admin

from namespaces.admin import OperatorScopedAdmin, count_of

from .models import StepRun, Task, Workflow, WorkflowRun

RUN_FIELDS = ["status", "triggered_by", "current_step_index", "failed_step_index", "started_at", "finished_at", "error"]
STEP_FIELDS = ["index", "name", "action", "status", "started_at", "finished_at", "error", "output"]


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WorkflowRunInline(ReadOnlyInline):
    model = WorkflowRun
    fields = RUN_FIELDS
    readonly_fields = RUN_FIELDS
    ordering = ["-created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("triggered_by")


class StepRunInline(ReadOnlyInline):
    model = StepRun
    fields = STEP_FIELDS
    readonly_fields = STEP_FIELDS
    show_change_link = False


@admin.register(Task)
class TaskAdmin(OperatorScopedAdmin):
    list_display = ["title", "status", "priority", "progress", "assigned_agent", "namespace", "due_at", "created_at"]
    list_filter = ["status", "priority", "task_type", ("namespace", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["assigned_agent", "namespace"]
    search_fields = ["title", "description"]
    autocomplete_fields = ["assigned_agent", "created_by", "dependencies"]
    readonly_fields = ["started_at", "completed_at", "retry_count", "created_at", "updated_at"]


@admin.register(Workflow)
class WorkflowAdmin(OperatorScopedAdmin):
    list_display = ["name", "workflow_type", "status", "namespace", "run_count", "execution_count", "last_executed_at"]
    list_filter = ["workflow_type", "status", ("namespace", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["namespace"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["created_by"]
    readonly_fields = ["execution_count", "last_executed_at", "created_at", "updated_at"]
    inlines = [WorkflowRunInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(run_count=count_of(WorkflowRun.objects.all(), "workflow"))

    @admin.display(description="runs", ordering="run_count")
    def run_count(self, obj):
        return obj.run_count


@admin.register(WorkflowRun)
class WorkflowRunAdmin(OperatorScopedAdmin):
    scope_field = "workflow__namespace"
    list_display = ["__str__", "workflow", "status", "triggered_by", "current_step_index", "started_at", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["workflow", "triggered_by"]
    search_fields = ["workflow__name"]
    fields = ["workflow", "input", "output", *RUN_FIELDS, "created_at"]
    readonly_fields = fields
    inlines = [StepRunInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
