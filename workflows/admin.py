"""Operator UI for tasks, workflows and their runs. Runs are records of execution and stay read-only."""
from __future__ import annotations

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html, format_html_join

import access
from access.admin_base import OperatorScopedAdmin, ServiceModelAdmin
from core.admin import count_of

from . import task_services, workflow_services
from .contracts import CreateTask, UpdateTask
from .definitions import CreateWorkflow, UpdateWorkflow
from .models import StepRun, Task, Workflow, WorkflowRun

TASK_FIELDS = [
    "title", "description", "task_type", "status", "priority", "progress", "assigned_agent", "namespace",
    "dependencies", "tags", "result", "error", "due_at", "max_retries", "metadata",
]
TASK_PLAIN_FIELDS = ["title", "description", "task_type", "status", "priority", "progress", "tags", "result", "error",
                     "due_at", "max_retries", "metadata"]
WORKFLOW_FIELDS = ["name", "description", "workflow_type", "status", "namespace", "steps", "config", "tags", "metadata"]
WORKFLOW_PLAIN_FIELDS = ["name", "description", "workflow_type", "status", "steps", "config", "tags", "metadata"]
EMPTY_JSON = {"tags": [], "steps": [], "config": {}, "metadata": {}}

RUN_FIELDS = ["status", "triggered_by", "current_step_index", "failed_step_index", "started_at", "finished_at", "error"]
STEP_FIELDS = ["index", "name", "action", "status", "started_at", "finished_at", "retries", "task", "error", "output"]


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
        # The runs the API shows this operator, nothing more.
        return super().get_queryset(request).filter(access.workflow_run_visibility_q(request.user)).select_related(
            "triggered_by"
        )


def _without_outputs(request, run, fields: list[str]) -> list[str]:
    """Outputs hold what the runner found: shown only to whoever may read them."""
    if run is not None and access.can_read_run_outputs(request.user, run):
        return fields
    return [name for name in fields if name != "output"]


class StepRunInline(ReadOnlyInline):
    model = StepRun
    fields = STEP_FIELDS
    readonly_fields = STEP_FIELDS
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("task")

    @admin.display(description="retries")
    def retries(self, obj):
        return obj.retries

    def get_fields(self, request, obj=None):
        return _without_outputs(request, obj, STEP_FIELDS)

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)


TIMELINE_COLOURS = {"completed": "#4caf50", "failed": "#e53935", "waiting": "#ffb300", "running": "#1e88e5",
                    "pending": "#bdbdbd", "cancelled": "#757575", "skipped": "#e0e0e0"}


def step_timeline(run, step_runs) -> str:
    """One row per step: a bar from its start to its end (or now) on the run's time axis, with its figures."""
    starts = [step.started_at for step in step_runs if step.started_at] + ([run.started_at] if run.started_at else [])
    if not starts:
        return "Not started."
    origin = min(starts)
    ends = [moment for step in step_runs for moment in (step.finished_at, step.started_at) if moment]
    end = max([run.finished_at or timezone.now(), *ends])
    total = max((end - origin).total_seconds(), 0.001)

    def row(step):
        if step.started_at is None:
            bar = ""
        else:
            left = (step.started_at - origin).total_seconds() / total * 100
            width = max(((step.finished_at or end) - step.started_at).total_seconds() / total * 100, 0.5)
            bar = format_html(
                '<div style="margin-left:{}%;width:{}%;height:10px;background:{}"></div>',
                f"{left:.2f}", f"{min(width, 100 - left):.2f}", TIMELINE_COLOURS.get(step.status, "#bdbdbd"))
        seconds = ((step.finished_at - step.started_at).total_seconds()
                   if step.started_at and step.finished_at else None)
        return (step.name, step.status, step.retries,
                step.started_at.strftime("%H:%M:%S.%f")[:-3] if step.started_at else "-",
                step.finished_at.strftime("%H:%M:%S.%f")[:-3] if step.finished_at else "-",
                f"{seconds:.1f} s" if seconds is not None else "-", bar)

    rows = format_html_join(
        "", '<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
            '<td style="width:40%;min-width:200px">{}</td></tr>',
        (row(step) for step in step_runs))
    return format_html(
        '<table class="tmws-timeline"><thead><tr><th>step</th><th>status</th><th>retries</th><th>start</th>'
        "<th>end</th><th>took</th><th>{} s</th></tr></thead><tbody>{}</tbody></table>", f"{total:.1f}", rows)


def _without_empty_json(values: dict) -> dict:
    return {k: (EMPTY_JSON[k] if v is None and k in EMPTY_JSON else v) for k, v in values.items()}


@admin.register(Task)
class TaskAdmin(ServiceModelAdmin):
    """Tasks change through workflows.task_services, so status moves follow the same transitions as the API."""

    fields = [*TASK_FIELDS, "created_by", "started_at", "completed_at", "retry_count", "created_at", "updated_at"]
    list_display = ["title", "status", "priority", "progress", "assigned_agent", "namespace", "due_at", "created_at"]
    list_filter = ["status", "priority", "task_type", ("namespace", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["assigned_agent", "namespace"]
    search_fields = ["title", "description"]
    autocomplete_fields = ["assigned_agent", "dependencies"]
    readonly_fields = ["created_by", "started_at", "completed_at", "retry_count", "created_at", "updated_at"]
    service_field_names = {"assigned_agent_id": "assigned_agent"}

    def get_fields(self, request, obj=None):
        if obj is None:  # a new task starts without progress, result or error
            return [f for f in TASK_FIELDS if f not in ("progress", "result", "error")]
        return super().get_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return super().has_change_permission(request)
        return self.has_view_permission(request) and access.can_change_task(request.user, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is None:
            return super().has_delete_permission(request)
        return self.has_view_permission(request) and access.can_delete_task(request.user, obj)

    def save_via_service(self, request, form, change):
        data = form.cleaned_data
        related = {
            "namespace": data["namespace"].namespace if data.get("namespace") else None,
            "assigned_agent_id": data["assigned_agent"].agent_id if data.get("assigned_agent") else "",
            "dependencies": [str(task.pk) for task in data.get("dependencies") or []],
        }
        if not change:
            plain = {k: data.get(k) for k in TASK_PLAIN_FIELDS if k not in ("progress", "result", "error")}
            return task_services.create_task(request.user, CreateTask.parse(_without_empty_json({**plain, **related})))
        changes = _without_empty_json(self.changes_from(form, TASK_PLAIN_FIELDS))
        for field, name in (("namespace", "namespace"), ("assigned_agent", "assigned_agent_id"),
                            ("dependencies", "dependencies")):
            if field in form.changed_data:
                changes[name] = related[name]
        update = UpdateTask.parse(changes)
        task = Task.objects.select_for_update(of=("self",)).get(pk=form.instance.pk)
        return task_services.update_task(request.user, task, update)

    def delete_via_service(self, request, obj):
        task_services.delete_task(request.user, obj)


@admin.register(Workflow)
class WorkflowAdmin(ServiceModelAdmin):
    """Workflows change through workflows.workflow_services, which validates the steps."""

    fields = [*WORKFLOW_FIELDS, "created_by", "execution_count", "last_executed_at", "created_at", "updated_at"]
    list_display = ["name", "workflow_type", "status", "namespace", "run_count", "execution_count", "last_executed_at"]
    list_filter = ["workflow_type", "status", ("namespace", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["namespace"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "execution_count", "last_executed_at", "created_at", "updated_at"]
    inlines = [WorkflowRunInline]

    def get_fields(self, request, obj=None):
        return WORKFLOW_FIELDS if obj is None else super().get_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return super().has_change_permission(request)
        return self.has_view_permission(request) and access.can_change_workflow(request.user, obj)

    def save_via_service(self, request, form, change):
        data = form.cleaned_data
        namespace = data["namespace"].namespace if data.get("namespace") else None
        if not change:
            plain = {k: data.get(k) for k in WORKFLOW_PLAIN_FIELDS}
            created = CreateWorkflow.parse(_without_empty_json({**plain, "namespace": namespace}))
            return workflow_services.create_workflow(request.user, created)
        changes = _without_empty_json(self.changes_from(form, WORKFLOW_PLAIN_FIELDS))
        if "namespace" in form.changed_data:
            changes["namespace"] = namespace
        update = UpdateWorkflow.parse(changes)
        workflow = Workflow.objects.select_for_update().get(pk=form.instance.pk)
        return workflow_services.update_workflow(request.user, workflow, update)

    def delete_via_service(self, request, obj):
        workflow_services.delete_workflow(request.user, obj)

    def get_deleted_objects(self, objs, request):
        # Runs go with their workflow; delete_workflow refuses while one is unfinished.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(WorkflowRun._meta.verbose_name)
        return deleted, counts, perms_needed, protected

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
    fields = ["workflow", "input", "output", *RUN_FIELDS, "timeline", "created_at"]
    readonly_fields = fields
    inlines = [StepRunInline]

    @admin.display(description="timeline")
    def timeline(self, run):
        """The run's steps on one time axis: when each started and ended, its status and retries."""
        return step_timeline(run, list(run.step_runs.order_by("index")))

    def scope_q(self, request, codenames=access.OPERATOR_NAMESPACE_PERMISSIONS):
        # The runs the API shows this operator (started by it, or of workflows it may change).
        return access.workflow_run_visibility_q(request.user)

    def get_fields(self, request, obj=None):
        return _without_outputs(request, obj, self.fields)

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
