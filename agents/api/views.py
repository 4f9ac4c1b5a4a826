from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.mixins import ListModelMixin, RetrieveModelMixin
from rest_framework.response import Response

from core.api import BaseViewSet
from core.errors import error_body
from core.schema import errors

from .. import services
from ..contracts import RegisterAgent, UpdateAgent
from ..filters import AgentFilter
from ..models import Agent
from .serializers import AgentSerializer, AgentWithKeySerializer


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

    @extend_schema(responses={204: None})
    def destroy(self, request, agent_id=None):
        services.retire_agent(self.principal, self.get_object())
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
