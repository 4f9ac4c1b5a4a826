from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.mixins import ListModelMixin, RetrieveModelMixin
from rest_framework.response import Response

import access
from core.api import BaseViewSet
from core.schema import errors

from .. import services
from ..contracts import AddMember, CreateNamespace, UpdateNamespace
from ..filters import NamespaceFilter
from ..models import Namespace
from .serializers import MemberSerializer, NamespaceSerializer


class NamespaceViewSet(ListModelMixin, RetrieveModelMixin, BaseViewSet):
    """Namespaces visible to the caller; creation and membership follow the access policies."""

    queryset = Namespace.objects.select_related("parent")
    serializer_class = NamespaceSerializer
    lookup_field = "namespace"
    lookup_value_regex = "[^/]+"
    filterset_class = NamespaceFilter

    def restrict(self, queryset):
        return queryset.filter(access.namespace_visibility_q(self.principal))

    @extend_schema(
        request=CreateNamespace,
        responses={201: NamespaceSerializer, **errors((409, "A namespace of this name exists."))},
    )
    def create(self, request):
        namespace = services.create_namespace(self.principal, CreateNamespace.parse(request.data))
        return Response(NamespaceSerializer(namespace).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateNamespace, responses=NamespaceSerializer)
    def partial_update(self, request, namespace=None):
        target = self.get_object()
        target = services.update_namespace(self.principal, target, UpdateNamespace.parse(request.data))
        return Response(NamespaceSerializer(target).data)

    @extend_schema(
        responses={204: None, **errors((409, "The namespace still has child namespaces, memories or home agents."))}
    )
    def destroy(self, request, namespace=None):
        services.delete_namespace(self.principal, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AddMember, responses={201: MemberSerializer})
    @action(detail=True, methods=["post"])
    def members(self, request, namespace=None):
        target = self.get_object()
        data = AddMember.parse(request.data)
        services.add_member(self.principal, target, data)
        return Response(MemberSerializer(data).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<agent_id>[^/]+)")
    def remove_member(self, request, namespace=None, agent_id=None):
        target = self.get_object()
        services.remove_member(self.principal, target, services.get_agent(agent_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: NamespaceSerializer})
    @action(detail=True, methods=["post"])
    def join(self, request, namespace=None):
        target = self.get_object()
        services.join_namespace(self.principal, target)
        return Response(NamespaceSerializer(target).data)
