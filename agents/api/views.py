from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.mixins import ListModelMixin, RetrieveModelMixin
from rest_framework.response import Response

from core import extensions
from core.api import BaseViewSet
from core.errors import error_body
from core.schema import errors

from .. import services
from ..contracts import PurgeAgent, RegisterAgent, UpdateAgent
from ..filters import AgentFilter
from ..models import Agent
from .serializers import AgentSerializer, AgentWithKeySerializer, PurgeReportSerializer


def _with_key(agent: Agent, key: str) -> dict:
    data = AgentSerializer(agent).data
    data["api_key"] = key
    return data


class AgentViewSet(ListModelMixin, RetrieveModelMixin, BaseViewSet):
    """Agents: every agent may list and read agents; operators and admin agents manage them."""

    queryset = Agent.objects.select_related("namespace")
    serializer_class = AgentSerializer
    lookup_field = "agent_id"
    lookup_value_regex = "[^/]+"
    filterset_class = AgentFilter

    def restrict(self, queryset):
        return queryset.visible_to(self.principal)

    @extend_schema(
        request=RegisterAgent,
        responses={201: AgentWithKeySerializer, **errors((409, "An agent with this agent_id exists."))},
    )
    def create(self, request):
        agent, key = services.register_agent(self.principal, RegisterAgent.parse(request.data))
        return Response(_with_key(agent, key), status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateAgent, responses=AgentSerializer)
    def partial_update(self, request, agent_id=None):
        agent = self.get_object()
        agent = services.update_agent(self.principal, agent, UpdateAgent.parse(request.data))
        return Response(AgentSerializer(agent).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("purge", bool, description="true: erase the agent and everything of it for good "
                             "(operators who manage it; superusers for admin agents)."),
            OpenApiParameter("hand_to", str, description="With purge: the agent that receives its shared, public and "
                             "system memories (default: they are erased too)."),
            OpenApiParameter("dry_run", bool, description="With purge: only count what would go; nothing changes."),
        ],
        responses={204: None, 200: PurgeReportSerializer},
        description="Retire the agent (204: deactivated, keys revoked, memories kept), or with `purge=true` "
        "(operators) erase it and everything of it for good (200: what went; `dry_run=true` only counts).",
    )
    def destroy(self, request, agent_id=None):
        agent = self.get_object()
        data = PurgeAgent.parse(request.query_params.dict())
        if data.purge:
            return Response(extensions.call("purge_agent", self.principal, agent, data, field="purge"))
        services.retire_agent(self.principal, agent)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: AgentSerializer, **errors((404, "The caller is an operator, not an agent."))})
    @action(detail=False, methods=["get"])
    def me(self, request):
        if self.principal.agent is None:
            return Response(
                error_body("not_an_agent", "This endpoint is for agents; you are an operator."),
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(AgentSerializer(self.principal.agent).data)

    @extend_schema(request=None, responses=AgentWithKeySerializer)
    @action(detail=True, methods=["post"], url_path="rotate-key")
    def rotate_key(self, request, agent_id=None):
        agent = self.get_object()
        key = services.rotate_key(self.principal, agent)
        agent.refresh_from_db()
        return Response(_with_key(agent, key))
