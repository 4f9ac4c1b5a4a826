"""API v1: the persona-era REST contract, served by the v2 services through the persona adapter.

Views only translate: persona-era field names in, v2 service calls, persona-era shapes out.
Authentication, row-level security, access control and the error shape are v2's (BaseAPIView).
Every response, errors included, says it is deprecated and names its v2 successor.
"""
from __future__ import annotations

from django.db.models import Prefetch
from rest_framework import status
from rest_framework.response import Response

import access
from agents.models import Agent
from core.api import BaseAPIView
from memories import search as memory_search
from memories import services as memory_services
from memories.models import Memory
from workflows import contracts as workflow_contracts
from workflows import runs as workflow_runs
from workflows import task_services, workflow_services
from workflows.contracts import CreateTask, StartRun, UpdateTask
from workflows.definitions import CreateWorkflow, UpdateWorkflow
from workflows.models import Task, Workflow

from ..adapter import (
    MEMORY_LEGACY_KEY,
    agent_for_persona,
    isoformat,
    legacy_persona_id,
    memory_importance,
    persona_to_dict,
    recall_count,
)
from ..contracts import (
    CompleteTask,
    ExecuteWorkflow,
    MemoryChanges,
    MemoryListQuery,
    MemorySearch,
    NewMemory,
    Page,
    PersonaListQuery,
    TaskFields,
    TaskListQuery,
    WorkflowFields,
    WorkflowListQuery,
)
from ..selectors import persona_stats
from ..sunset import sunset_header


def _page(queryset, page: Page, shape) -> dict:
    total = queryset.count()
    items = queryset[page.offset:page.offset + page.limit]
    return {"items": [shape(obj) for obj in items], "total": total, "limit": page.limit, "offset": page.offset}


def _query(request, contract):
    """The request's query string as `contract` (a parameter given twice counts with its last value)."""
    return contract.parse(request.query_params.dict())


def _persona_agent_id(reference: str | None) -> str | None:
    """The agent_id a persona reference (name or UUID) names; None when absent."""
    if reference is None:
        return None
    return agent_for_persona(reference).agent_id


def _object_or_empty(request) -> dict:
    """The body of the persona-era endpoints that took anything but an object as no fields at all."""
    return request.data if isinstance(request.data, dict) else {}


class V1View(BaseAPIView):
    """Base of every v1 view: v2 authentication and access, plus the deprecation headers."""

    successor = "/api/v2/"
    # The OpenAPI schema describes v2; the deprecated v1 shapes are in docs/migration-guide.md.
    schema = None

    def successor_path(self) -> str:
        return self.successor.format(**{k: v for k, v in self.kwargs.items()})

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Deprecation"] = "true"
        response["Sunset"] = sunset_header()
        response["Link"] = f'<{self.successor_path()}>; rel="successor-version"'
        return response


# --- personas ---------------------------------------------------------------------------------

class PersonaListView(V1View):
    successor = "/api/v2/agents"

    def get(self, request):
        query = _query(request, PersonaListQuery)
        agents = Agent.objects.visible_to(self.principal).select_related("namespace")
        if query.persona_only:
            agents = agents.filter(agent_type="persona")
        if query.is_active is not None:
            agents = agents.filter(is_active=query.is_active)
        return Response(_page(agents.order_by("agent_id"), query, persona_to_dict))


class PersonaDetailView(V1View):
    successor = "/api/v2/agents/{name}"

    def get(self, request, name):
        return Response(persona_to_dict(agent_for_persona(name)))

    def successor_path(self) -> str:
        return "/api/v2/agents/" + str(self.kwargs.get("name", ""))


class PersonaStatsView(PersonaDetailView):
    def get(self, request, name):
        return Response(persona_stats(self.principal, agent_for_persona(name)))


# --- memory -----------------------------------------------------------------------------------

def memory_to_dict(memory: Memory) -> dict:
    owner = memory.agent
    metadata = {k: v for k, v in (memory.metadata or {}).items() if k != MEMORY_LEGACY_KEY}
    return {
        "id": str(memory.pk),
        "content": memory.content,
        "persona_id": (legacy_persona_id(owner) or str(owner.pk)) if owner else None,
        "persona_name": owner.agent_id if owner else None,
        "importance": memory_importance(memory),
        "tags": memory.context_tags,
        "context_type": memory.memory_category,
        "metadata": metadata,
        "access_count": memory.access_count,
        "accessed_at": isoformat(memory.last_accessed_at),
        "recall_count": recall_count(memory),
        "has_embedding": memory.embedding_status == "ready",
        "content_length": len(memory.content),
        "namespace": memory.namespace.namespace,
        "access_level": memory.access_level,
        "created_at": isoformat(memory.created_at),
        "updated_at": isoformat(memory.updated_at),
    }


class MemoryListView(V1View):
    successor = "/api/v2/memories"

    def get(self, request):
        query = _query(request, MemoryListQuery)
        memories = Memory.objects.for_display().visible_to(self.principal)
        if query.persona_id:
            memories = memories.filter(agent=agent_for_persona(query.persona_id))
        if query.context_type:
            memories = memories.filter(memory_category=query.context_type)
        if query.tag:
            memories = memories.filter(context_tags__contains=[query.tag])
        return Response(_page(memories.order_by("-created_at"), query, memory_to_dict))

    def post(self, request):
        data = NewMemory.parse(request.data)
        agent_id = _persona_agent_id(data.persona_id)
        namespace = None
        if agent_id and self.principal.agent is None and "namespace" not in data.given():
            # An operator writing for a persona: the persona's home namespace, as in the persona era.
            namespace = agent_for_persona(agent_id).namespace.namespace
        memory = memory_services.create_memory(self.principal, data.store(agent_id, namespace))
        return Response(memory_to_dict(memory), status=status.HTTP_201_CREATED)


class MemoryDetailView(V1View):
    successor = "/api/v2/memories/{pk}"

    def get(self, request, pk):
        return Response(memory_to_dict(memory_services.get_visible_memory(self.principal, pk)))

    def put(self, request, pk):
        memory = memory_services.get_visible_memory(self.principal, pk)
        changes = MemoryChanges.parse(request.data)
        # A new metadata object keeps what the import recorded from the persona era.
        legacy = (memory.metadata or {}).get(MEMORY_LEGACY_KEY)
        memory = memory_services.update_memory(self.principal, memory, changes.update(legacy))
        return Response(memory_to_dict(memory))

    patch = put

    def delete(self, request, pk):
        memory_services.delete_memory(self.principal, memory_services.get_visible_memory(self.principal, pk))
        return Response({"deleted": True, "id": str(pk)})


class MemorySearchView(V1View):
    successor = "/api/v2/memories/search"

    def post(self, request):
        data = MemorySearch.parse(request.data)
        search = data.search(_persona_agent_id(data.persona_id))
        result = memory_search.search(self.principal, memory_search.search_request(search))
        items = []
        for hit in result.hits:
            item = memory_to_dict(hit.memory)
            item["similarity"] = hit.similarity
            item["score"] = hit.score
            items.append(item)
        items = data.important_enough(items)
        return Response({"query": data.query, "results": items, "count": len(items)})


# --- tasks ------------------------------------------------------------------------------------

def task_to_dict(task: Task) -> dict:
    agent = task.assigned_agent
    return {
        "id": str(task.pk),
        "title": task.title,
        "description": task.description,
        "task_type": task.task_type,
        "status": task.status,
        "priority": task.priority,
        "progress": task.progress,
        "assigned_persona_id": (legacy_persona_id(agent) or str(agent.pk)) if agent else None,
        "assigned_persona": agent.agent_id if agent else None,
        "dependencies": [str(dependency.pk) for dependency in task.dependencies.all()],
        "result": task.result,
        "error_message": task.error,
        "started_at": isoformat(task.started_at),
        "completed_at": isoformat(task.completed_at),
        "retry_count": task.retry_count,
        "max_retries": task.max_retries,
        "tags": task.tags,
        "metadata": task.metadata,
        "created_at": isoformat(task.created_at),
        "updated_at": isoformat(task.updated_at),
    }


def task_fields(request) -> dict:
    """The body's task fields under their v2 names, the assignee's persona resolved to its agent."""
    data = TaskFields.parse(request.data)
    fields = data.v2_fields()
    if "assigned_persona_id" in data.given():
        fields["assigned_agent_id"] = _persona_agent_id(data.assigned_persona_id)
    return fields


class TaskListView(V1View):
    successor = "/api/v2/tasks"

    def get(self, request):
        query = _query(request, TaskListQuery)
        tasks = (
            Task.objects.visible_to(self.principal)
            .select_related("assigned_agent")
            .prefetch_related(Prefetch("dependencies", queryset=Task.objects.only("id")))
        )
        if query.status:
            tasks = tasks.filter(status=query.status)
        if query.assigned_persona_id:
            tasks = tasks.filter(assigned_agent=agent_for_persona(query.assigned_persona_id))
        return Response(_page(tasks.order_by("-created_at"), query, task_to_dict))

    def post(self, request):
        fields = task_fields(request)
        fields.pop("progress", None)
        fields.pop("result", None)
        task = task_services.create_task(self.principal, CreateTask.parse(fields))
        return Response(task_to_dict(task), status=status.HTTP_201_CREATED)


class TaskDetailView(V1View):
    successor = "/api/v2/tasks/{pk}"

    def get(self, request, pk):
        return Response(task_to_dict(task_services.get_visible_task(self.principal, pk)))

    def put(self, request, pk):
        task = task_services.get_visible_task(self.principal, pk)
        task = task_services.update_task(self.principal, task, UpdateTask.parse(task_fields(request)))
        return Response(task_to_dict(task))

    patch = put

    def delete(self, request, pk):
        task_services.delete_task(self.principal, task_services.get_visible_task(self.principal, pk))
        return Response({"deleted": True, "id": str(pk)})


class TaskCompleteView(TaskDetailView):
    def post(self, request, pk):
        task = task_services.get_visible_task(self.principal, pk)
        data = CompleteTask.parse(_object_or_empty(request))
        completion = workflow_contracts.CompleteTask.parse({"result": data.result})
        task = task_services.complete_task(self.principal, task, completion)
        return Response(task_to_dict(task))


# --- workflows --------------------------------------------------------------------------------

def workflow_to_dict(workflow: Workflow) -> dict:
    creator = workflow.created_by
    return {
        "id": str(workflow.pk),
        "name": workflow.name,
        "description": workflow.description,
        "workflow_type": workflow.workflow_type,
        "status": workflow.status,
        "steps": workflow.steps,
        "config": workflow.config,
        "tags": workflow.tags,
        "execution_count": workflow.execution_count,
        "last_executed_at": isoformat(workflow.last_executed_at),
        "created_by": creator.agent_id if creator else None,
        "metadata": workflow.metadata,
        "created_at": isoformat(workflow.created_at),
        "updated_at": isoformat(workflow.updated_at),
    }


class WorkflowListView(V1View):
    successor = "/api/v2/workflows"

    def get(self, request):
        query = _query(request, WorkflowListQuery)
        workflows = Workflow.objects.visible_to(self.principal).select_related("created_by")
        if query.status:
            workflows = workflows.filter(status=query.status)
        return Response(_page(workflows.order_by("-created_at"), query, workflow_to_dict))

    def post(self, request):
        fields = WorkflowFields.parse(request.data).given()
        workflow = workflow_services.create_workflow(self.principal, CreateWorkflow.parse(fields))
        return Response(workflow_to_dict(workflow), status=status.HTTP_201_CREATED)


class WorkflowDetailView(V1View):
    successor = "/api/v2/workflows/{pk}"

    def get(self, request, pk):
        return Response(workflow_to_dict(workflow_services.get_visible_workflow(self.principal, pk)))

    def put(self, request, pk):
        workflow = workflow_services.get_visible_workflow(self.principal, pk)
        changes = WorkflowFields.parse(request.data).given()
        updated = workflow_services.update_workflow(self.principal, workflow, UpdateWorkflow.parse(changes))
        return Response(workflow_to_dict(updated))

    patch = put

    def delete(self, request, pk):
        workflow_services.delete_workflow(self.principal, workflow_services.get_visible_workflow(self.principal, pk))
        return Response({"deleted": True, "id": str(pk)})


def run_to_dict(principal, run) -> dict | None:
    """A run in the persona-era shape; its output only for whoever may read it (the runner)."""
    if run is None:
        return None
    return {
        "id": str(run.pk),
        "status": run.status,
        "current_step_index": run.current_step_index,
        "failed_step_index": run.failed_step_index,
        "error_message": run.error,
        "output": run.output if access.can_read_run_outputs(principal, run) else None,
        "started_at": isoformat(run.started_at),
        "completed_at": isoformat(run.finished_at),
    }


class WorkflowExecuteView(V1View):
    successor = "/api/v2/workflows/{pk}/run"

    def post(self, request, pk):
        workflow = workflow_services.get_visible_workflow(self.principal, pk)
        run_input = ExecuteWorkflow.parse(_object_or_empty(request)).run_input()
        run = workflow_runs.start_workflow_run(self.principal, workflow, StartRun.parse({"input": run_input}))
        return Response({"workflow_id": str(workflow.pk), "run_id": str(run.pk), "status": run.status},
                        status=status.HTTP_202_ACCEPTED)


class WorkflowStatusView(V1View):
    successor = "/api/v2/workflows/{pk}/runs"

    def get(self, request, pk):
        workflow = workflow_services.get_visible_workflow(self.principal, pk)
        latest = workflow_runs.visible_runs(self.principal, workflow).order_by("-created_at").first()
        workflow.refresh_from_db(fields=["execution_count", "last_executed_at", "status"])
        return Response({
            "workflow_id": str(workflow.pk),
            "name": workflow.name,
            "status": latest.status if latest else workflow.status,
            "workflow_status": workflow.status,
            "execution_count": workflow.execution_count,
            "last_executed_at": isoformat(workflow.last_executed_at),
            "current_run": run_to_dict(self.principal, latest),
        })
