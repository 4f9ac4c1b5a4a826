"""Base API views: resolve the principal once and run agent requests under row-level security."""
from __future__ import annotations

from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from namespaces.access import Principal

from .db import enter_agent_context, leave_agent_context


class PrincipalMixin:
    """Resolve the caller once and run agent requests under row-level security."""

    principal: Principal

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.principal = Principal.of(request.user)
        self._agent_context = self.principal.agent is not None
        if self._agent_context:
            enter_agent_context(self.principal.agent)

    def finalize_response(self, request, response, *args, **kwargs):
        if getattr(self, "_agent_context", False):
            leave_agent_context()
            self._agent_context = False
        return super().finalize_response(request, response, *args, **kwargs)

    def get_authenticate_header(self, request):
        return "Bearer"


class BaseAPIView(PrincipalMixin, APIView):
    pass


class BaseViewSet(PrincipalMixin, GenericViewSet):
    """Viewsets narrow their queryset through `restrict(queryset)` before any handler runs."""

    def restrict(self, queryset):
        raise NotImplementedError

    def get_queryset(self):
        return self.restrict(super().get_queryset())
