"""Output shapes of tasks, workflows and runs, and request shapes for the schema (values are validated by workflows.services)."""
from __future__ import annotations

from rest_framework import serializers

import access

from ..models import RunStatus, StepRun, Task, TaskPriority, TaskStatus, Workflow, WorkflowRun, WorkflowType
from ..services import WORKFLOW_DEFINITION_STATUSES


class TaskSerializer(serializers.ModelSerializer):
    assigned_agent_id = serializers.SlugRelatedField(
        source="assigned_agent", slug_field="agent_id", read_only=True, allow_null=True
    )
    created_by = serializers.SlugRelatedField(slug_field="agent_id", read_only=True, allow_null=True)
    namespace = serializers.SlugRelatedField(slug_field="namespace", read_only=True, allow_null=True)
    dependencies = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Task
        fields = [
            "id", "title", "description", "task_type", "status", "priority", "progress", "assigned_agent_id",
            "created_by", "namespace", "dependencies", "tags", "result", "error", "started_at", "completed_at",
            "due_at", "retry_count", "max_retries", "metadata", "created_at", "updated_at",
        ]
        read_only_fields = fields


class TaskWriteSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False)
    task_type = serializers.CharField(required=False, default="general")
    priority = serializers.ChoiceField(choices=TaskPriority.choices, default=TaskPriority.MEDIUM)
    status = serializers.ChoiceField(choices=TaskStatus.choices, default=TaskStatus.PENDING)
    namespace = serializers.CharField(required=False, help_text="Defaults to the agent's home namespace.")
    assigned_agent_id = serializers.CharField(required=False, allow_null=True)
    dependencies = serializers.ListField(child=serializers.UUIDField(), required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    metadata = serializers.DictField(required=False)
    due_at = serializers.DateTimeField(required=False, allow_null=True)
    max_retries = serializers.IntegerField(required=False, min_value=0, max_value=100, default=3)


class TaskAssignSerializer(serializers.Serializer):
    agent_id = serializers.CharField(allow_null=True, help_text="null or empty unassigns the task.")


class TaskStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=TaskStatus.choices)
    progress = serializers.FloatField(required=False, min_value=0, max_value=1)
    result = serializers.JSONField(required=False)
    error = serializers.CharField(required=False)


class TaskCompleteSerializer(serializers.Serializer):
    result = serializers.JSONField(required=False)


class WorkflowSerializer(serializers.ModelSerializer):
    namespace = serializers.SlugRelatedField(slug_field="namespace", read_only=True, allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="agent_id", read_only=True, allow_null=True)

    class Meta:
        model = Workflow
        fields = [
            "id", "name", "description", "workflow_type", "status", "steps", "config", "tags", "namespace",
            "created_by", "execution_count", "last_executed_at", "metadata", "created_at", "updated_at",
        ]
        read_only_fields = fields


class StepSerializer(serializers.Serializer):
    name = serializers.CharField()
    action = serializers.ChoiceField(
        choices=["create_task", "assign_task", "update_task_status", "store_memory", "search_memories", "wait"]
    )
    params = serializers.DictField(required=False)
    depends_on = serializers.ListField(child=serializers.CharField(), required=False)
    when = serializers.DictField(required=False, help_text="Skip the step unless this condition holds.")
    description = serializers.CharField(required=False)


class WorkflowWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False)
    workflow_type = serializers.ChoiceField(choices=WorkflowType.choices, default=WorkflowType.SEQUENTIAL)
    status = serializers.ChoiceField(choices=[(s.value, s.label) for s in WORKFLOW_DEFINITION_STATUSES], default="draft")
    steps = StepSerializer(many=True)
    config = serializers.DictField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    namespace = serializers.CharField(required=False, help_text="Defaults to the agent's home namespace.")
    metadata = serializers.DictField(required=False)


class RunRequestSerializer(serializers.Serializer):
    input = serializers.DictField(required=False, help_text="Referenced by steps as {{ input.<key> }}.")


class StepRunSerializer(serializers.ModelSerializer):
    reason = serializers.SerializerMethodField(help_text="Why the step was skipped or cancelled.")

    class Meta:
        model = StepRun
        fields = ["index", "name", "action", "status", "output", "error", "reason", "started_at", "finished_at"]
        read_only_fields = fields

    def get_reason(self, step_run) -> str:
        return step_run.metadata.get("reason", "")


class WorkflowRunSerializer(serializers.ModelSerializer):
    """A run; its outputs (the run's and its steps') only for whoever may read them (context["principal"])."""

    workflow_id = serializers.UUIDField(read_only=True)
    triggered_by = serializers.SlugRelatedField(slug_field="agent_id", read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=RunStatus.choices, read_only=True)
    outputs_hidden = serializers.SerializerMethodField(
        help_text="True when outputs are withheld: they hold what the runner found, shown to the runner only."
    )

    class Meta:
        model = WorkflowRun
        fields = [
            "id", "workflow_id", "status", "triggered_by", "input", "output", "outputs_hidden", "error",
            "current_step_index", "failed_step_index", "started_at", "finished_at", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_outputs_hidden(self, run) -> bool:
        principal = self.context.get("principal")
        return principal is None or not access.can_read_run_outputs(principal, run)

    def to_representation(self, run):
        data = super().to_representation(run)
        if data["outputs_hidden"]:
            data["output"] = None
            for step in data.get("step_runs") or []:
                step["output"] = None
        return data


class WorkflowRunDetailSerializer(WorkflowRunSerializer):
    step_runs = StepRunSerializer(many=True, read_only=True)

    class Meta(WorkflowRunSerializer.Meta):
        fields = [*WorkflowRunSerializer.Meta.fields, "step_runs"]
        read_only_fields = fields
