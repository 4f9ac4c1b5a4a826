from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.mixins import ListModelMixin

import access
from core.api import BaseViewSet
from core.errors import Forbidden
from core.schema import errors

from ..filters import AuditEntryFilter
from ..models import AuditEntry
from .serializers import AuditEntrySerializer


class AuditViewSet(ListModelMixin, BaseViewSet):
    """The audit trail, newest first: operators read their namespaces' entries (superusers all); agents none."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter

    def restrict(self, queryset):
        return queryset.visible_to(self.principal)

    @extend_schema(responses={200: AuditEntrySerializer(many=True), **errors((403, "Agents do not read the audit trail."))})
    def list(self, request):
        if not access.can_read_audit(self.principal):
            raise Forbidden("The audit trail is read by operators only.")
        return super().list(request)
