from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.mixins import ListModelMixin, RetrieveModelMixin
from rest_framework.response import Response

from core.api import BaseViewSet, IgnoreAccept
from core.schema import errors

from .. import consolidation, contextual, learning, patterns, services, transfer, usage
from .. import search as memory_search
from ..choices import UsageKind
from ..contracts import (
    Categorise,
    ContextualSearch,
    ExportMemories,
    Feedback,
    MergeMemories,
    RestoreVersion,
    SearchMemories,
    ShareMemory,
    StoreMemories,
    StoreMemory,
    UpdateMemories,
    UpdateMemory,
)
from ..filters import MemoryFilter
from ..models import Memory
from .serializers import (
    CategoriseResultSerializer,
    InsightsSerializer,
    MemoryAccessSerializer,
    MemoryBulkCreatedSerializer,
    MemoryBulkUpdatedSerializer,
    MemorySerializer,
    MemoryVersionSerializer,
    PatternSerializer,
    SearchResponseSerializer,
    ShareSerializer,
    search_response,
)


class MemoryViewSet(ListModelMixin, RetrieveModelMixin, BaseViewSet):
    """Memories the caller may read; writes go through memories.services."""

    queryset = Memory.objects.for_display()
    serializer_class = MemorySerializer
    filterset_class = MemoryFilter

    def restrict(self, queryset):
        return queryset.visible_to(self.principal)

    def get_object(self):
        return services.get_visible_memory(self.principal, self.kwargs["pk"])

    def _any_state(self):
        """The memory also when a merge retired it: its history stays readable and it can be restored."""
        return services.get_visible_memory(self.principal, self.kwargs["pk"], current=False)

    def retrieve(self, request, pk=None):
        memory = self.get_object()
        usage.track_use(self.principal, UsageKind.READ, [memory.pk])
        return Response(MemorySerializer(memory).data)

    @extend_schema(request=StoreMemory, responses={201: MemorySerializer})
    def create(self, request):
        memory = services.create_memory(self.principal, StoreMemory.parse(request.data))
        return Response(MemorySerializer(memory).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateMemory, responses=MemorySerializer)
    def partial_update(self, request, pk=None):
        changes = UpdateMemory.parse(request.data)
        memory = services.update_memory(self.principal, self.get_object(), changes)
        return Response(MemorySerializer(memory).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.delete_memory(self.principal, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=StoreMemories, responses={201: MemoryBulkCreatedSerializer})
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        # A bare list is taken as the `memories` list.
        body = {"memories": request.data} if isinstance(request.data, list) else request.data
        memories = services.bulk_create_memories(self.principal, StoreMemories.parse(body))
        return Response(
            {"count": len(memories), "ids": [str(m.pk) for m in memories]}, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=UpdateMemories,
                   responses={200: MemoryBulkUpdatedSerializer,
                              **errors((404, "A memory named does not exist or is not yours to read."))},
                   description="Set the category, learning weight or expiry of many memories in one call, all or "
                   "nothing (what the suggestions of the insights apply).")
    @action(detail=False, methods=["post"], url_path="bulk-update")
    def bulk_update(self, request):
        memories = services.bulk_update_memories(self.principal, UpdateMemories.parse(request.data))
        return Response({"count": len(memories), "ids": [str(m.pk) for m in memories]})

    @extend_schema(request=MergeMemories, responses={
        201: MemorySerializer, **errors((404, "A memory of the group is missing or hidden from you (named by its place)."))})
    @action(detail=False, methods=["post"])
    def merge(self, request):
        memory = consolidation.merge_memories(self.principal, MergeMemories.parse(request.data))
        return Response(MemorySerializer(memory).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SearchMemories, responses=SearchResponseSerializer)
    @action(detail=False, methods=["post"])
    def search(self, request):
        search_request = memory_search.search_request(SearchMemories.parse(request.data))
        return Response(search_response(memory_search.search(self.principal, search_request)))

    @extend_schema(request=ContextualSearch, responses=SearchResponseSerializer)
    @action(detail=False, methods=["post"], url_path="contextual-search")
    def contextual_search(self, request):
        search_request, turns, task = contextual.contextual_request(ContextualSearch.parse(request.data))
        return Response(search_response(contextual.contextual_search(self.principal, search_request, turns, task)))

    @extend_schema(
        parameters=[OpenApiParameter("agent_id", str, description="Operators: the agent to analyse (agents: themselves).")],
        responses={200: InsightsSerializer, **errors((403, "No right to analyse that agent's memories."))},
    )
    @action(detail=False, methods=["get"])
    def insights(self, request):
        agent = learning.subject(self.principal, request.query_params.get("agent_id"))
        return Response(learning.insights(agent, actor=self.principal))

    @extend_schema(
        summary="Export memories as JSON Lines",
        description=(
            "The caller's memories, streamed in the format `manage.py import_memories` reads: agents get the memories "
            "they own (never one merely shared with them) with the versions they may read and their shares; "
            "operators the memories of their namespaces. Expired and deleted memories are not in it."
        ),
        parameters=[
            OpenApiParameter("namespace", str, description=(
                "Only memories in this namespace and the namespaces below it (a name or a path).")),
            OpenApiParameter("agent_id", str, description=(
                "Operators: only memories owned by this agent. Agents export their own memories only.")),
        ],
        responses={
            (200, transfer.CONTENT_TYPE): OpenApiResponse(str, description=(
                "JSON Lines: a header line (format, version, embedding_model, embedding_dimensions, exported_at, "
                "source), then one line per memory with its embedding, shares and history (docs/lifecycle.md). "
                "Agents get the memories they own; operators those of their namespaces.")),
            **errors((403, "An agent asked for another agent's memories.")),
        },
        filters=False,
    )
    @action(detail=False, methods=["get"], content_negotiation_class=IgnoreAccept)
    def export(self, request):
        data = ExportMemories.parse(request.query_params.dict())
        plan = transfer.export_plan(self.principal, data, source=request.build_absolute_uri("/"))
        response = StreamingHttpResponse(transfer.export_lines(plan), content_type=transfer.CONTENT_TYPE)
        response["Content-Disposition"] = 'attachment; filename="memories.jsonl"'
        return response

    @extend_schema(request=Categorise, responses=CategoriseResultSerializer)
    @action(detail=False, methods=["post"])
    def categorise(self, request):
        data = Categorise.parse(request.data)
        agent = learning.subject(self.principal, data.agent_id)
        return Response(learning.categorise(agent, apply=data.apply, actor=self.principal))

    @extend_schema(request=ShareMemory, responses={200: ShareSerializer})
    @action(detail=True, methods=["post", "delete"])
    def share(self, request, pk=None):
        memory = self.get_object()
        data = ShareMemory.parse(request.data)
        if request.method == "DELETE":
            shared = services.unshare_memory(self.principal, memory, data)
        else:
            shared = services.share_memory(self.principal, memory, data)
        return Response({"agent_ids": shared})

    @extend_schema(responses=MemoryVersionSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        versions = services.memory_history(self.principal, self._any_state())
        page = self.paginate_queryset(versions)
        return self.get_paginated_response(MemoryVersionSerializer(page, many=True, context={"viewer": self.principal}).data)

    @extend_schema(request=RestoreVersion, responses=MemorySerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        memory = services.restore_memory(self.principal, self._any_state(), RestoreVersion.parse(request.data))
        return Response(MemorySerializer(memory).data)

    @extend_schema(responses=MemoryAccessSerializer)
    @action(detail=True, methods=["get"], url_path="access")
    def access(self, request, pk=None):
        return Response(services.explain_access(self.principal, self.get_object()))

    @extend_schema(request=Feedback, responses=MemorySerializer)
    @action(detail=True, methods=["post"])
    def feedback(self, request, pk=None):
        memory = services.record_feedback(self.principal, self.get_object(), Feedback.parse(request.data))
        return Response(MemorySerializer(memory).data)


class AgentPatternsViewSet(BaseViewSet):
    """GET /api/v2/agents/{agent_id}/patterns: what the nightly job learned about an agent (docs/learning.md).

    Routed from the memories app, so the agents app below it needs to know nothing of memories.
    """

    queryset = Memory.objects.none()
    serializer_class = PatternSerializer

    def restrict(self, queryset):
        return queryset

    @extend_schema(
        responses={200: PatternSerializer, **errors((403, "No right to analyse that agent's memories."))},
        filters=False,
        description="What the nightly pattern job learned about an agent: topics, memories returned together, the "
        "categories its searches find, its active hours, stale memories, memories returned but never used, and private "
        "memories other members keep looking for (docs/learning.md). The agent reads its own; operators and admin "
        "agents who manage it read it too, naming only memories they may read.",
    )
    def retrieve(self, request, agent_id=None):
        agent = learning.named_subject(self.principal, agent_id)
        return Response(PatternSerializer(patterns.pattern_for(self.principal, agent)).data)
