from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.mixins import ListModelMixin, RetrieveModelMixin
from rest_framework.response import Response

from core.api import BaseViewSet
from core.schema import errors

from .. import runs as run_services
from .. import task_services, workflow_services
from ..contracts import AssignTask, CompleteTask, CreateTask, StartRun, UpdateTask, UpdateTaskStatus
from ..definitions import CreateWorkflow, UpdateWorkflow
from ..filters import TaskFilter, WorkflowFilter
from ..models import Task, Workflow
from .serializers import (
    TaskSerializer,
    WorkflowRunDetailSerializer,
    WorkflowRunSerializer,
    WorkflowSerializer,
)

RUN_ID = r"runs/(?P<run_id>[^/.]+)"
RUN_ID_PARAMETER = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
STATUS_CONFLICT = (409, "The status change is not allowed from the current status, or retries are used up.")


class TaskViewSet(ListModelMixin, RetrieveModelMixin, BaseViewSet):
    """Tasks the caller may read; writes go through workflows.task_services."""

    queryset = Task.objects.select_related("assigned_agent", "created_by", "namespace").prefetch_related("dependencies")
    serializer_class = TaskSerializer
    filterset_class = TaskFilter

    def restrict(self, queryset):
        return queryset.visible_to(self.principal)

    def get_object(self):
        return task_services.get_visible_task(self.principal, self.kwargs["pk"])

    @extend_schema(request=CreateTask, responses={201: TaskSerializer})
    def create(self, request):
        task = task_services.create_task(self.principal, CreateTask.parse(request.data))
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateTask, responses={200: TaskSerializer, **errors(STATUS_CONFLICT)})
    def partial_update(self, request, pk=None):
        changes = UpdateTask.parse(request.data)
        task = task_services.update_task(self.principal, self.get_object(), changes)
        return Response(TaskSerializer(task).data)

    @extend_schema(responses={204: None, **errors((409, "Unfinished tasks depend on this task."))})
    def destroy(self, request, pk=None):
        task_services.delete_task(self.principal, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssignTask, responses=TaskSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        task = task_services.assign_task(self.principal, self.get_object(), AssignTask.parse(request.data))
        return Response(TaskSerializer(task).data)

    @extend_schema(request=UpdateTaskStatus, responses={200: TaskSerializer, **errors(STATUS_CONFLICT)})
    @action(detail=True, methods=["post"], url_path="status")
    def change_status(self, request, pk=None):
        task = task_services.update_task_status(self.principal, self.get_object(), UpdateTaskStatus.parse(request.data))
        return Response(TaskSerializer(task).data)

    @extend_schema(request=CompleteTask, responses={200: TaskSerializer, **errors(STATUS_CONFLICT)})
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        # The body is optional: anything but an object completes the task without a result.
        data = CompleteTask.parse(request.data if isinstance(request.data, dict) else {})
        task = task_services.complete_task(self.principal, self.get_object(), data)
        return Response(TaskSerializer(task).data)


class WorkflowViewSet(ListModelMixin, RetrieveModelMixin, BaseViewSet):
    """Workflows the caller may read, and their runs; writes go through workflows.workflow_services and workflows.runs."""

    queryset = Workflow.objects.select_related("created_by", "namespace")
    serializer_class = WorkflowSerializer
    filterset_class = WorkflowFilter

    def restrict(self, queryset):
        return queryset.visible_to(self.principal)

    def get_object(self):
        return workflow_services.get_visible_workflow(self.principal, self.kwargs["pk"])

    def run_context(self) -> dict:
        """Run serializers show outputs only to whoever may read them."""
        return {"principal": self.principal}

    @extend_schema(request=CreateWorkflow, responses={201: WorkflowSerializer})
    def create(self, request):
        workflow = workflow_services.create_workflow(self.principal, CreateWorkflow.parse(request.data))
        return Response(WorkflowSerializer(workflow).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateWorkflow, responses=WorkflowSerializer)
    def partial_update(self, request, pk=None):
        changes = UpdateWorkflow.parse(request.data)
        workflow = workflow_services.update_workflow(self.principal, self.get_object(), changes)
        return Response(WorkflowSerializer(workflow).data)

    @extend_schema(responses={204: None, **errors((409, "The workflow has unfinished runs."))})
    def destroy(self, request, pk=None):
        workflow_services.delete_workflow(self.principal, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=StartRun,
        responses={202: WorkflowRunSerializer, **errors((409, "The workflow is inactive."))},
    )
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        data = StartRun.parse(request.data if request.data not in (None, "") else {})
        run = run_services.start_workflow_run(self.principal, self.get_object(), data)
        return Response(WorkflowRunSerializer(run, context=self.run_context()).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=WorkflowRunSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def runs(self, request, pk=None):
        runs = run_services.visible_runs(self.principal, self.get_object())
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(WorkflowRunSerializer(page, many=True, context=self.run_context()).data)

    @extend_schema(request=None, responses=WorkflowRunDetailSerializer, parameters=[RUN_ID_PARAMETER])
    @action(detail=True, methods=["get"], url_path=RUN_ID)
    def run_detail(self, request, pk=None, run_id=None):
        run = run_services.get_visible_run(self.principal, self.get_object(), run_id)
        return Response(WorkflowRunDetailSerializer(run, context=self.run_context()).data)

    @extend_schema(
        request=None,
        responses={200: WorkflowRunSerializer, **errors((409, "The run has already finished."))},
        parameters=[RUN_ID_PARAMETER],
    )
    @action(detail=True, methods=["post"], url_path=f"{RUN_ID}/cancel")
    def cancel_run(self, request, pk=None, run_id=None):
        run = run_services.get_visible_run(self.principal, self.get_object(), run_id)
        cancelled = run_services.cancel_workflow_run(self.principal, run)
        return Response(WorkflowRunSerializer(cancelled, context=self.run_context()).data)
