"""Output shapes of tasks, workflows and runs (request bodies are declared by workflows.contracts)."""
from __future__ import annotations

from rest_framework import serializers

import access

from ..models import RunStatus, StepRun, Task, Workflow, WorkflowRun


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


class StepRunSerializer(serializers.ModelSerializer):
    reason = serializers.SerializerMethodField(help_text="Why the step was skipped or cancelled.")
    retries = serializers.IntegerField(read_only=True, help_text="How many times the step was tried again.")
    task_id = serializers.UUIDField(read_only=True, allow_null=True,
                                    help_text="The task an agent_task step opened (its latest attempt's).")

    class Meta:
        model = StepRun
        fields = ["index", "name", "action", "status", "output", "error", "reason", "attempt", "retries", "task_id",
                  "started_at", "finished_at", "due_at", "deadline_at"]
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
