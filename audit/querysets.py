"""Reads of the audit trail, always narrowed by the access module first."""
from __future__ import annotations

from django.db import models


class AuditEntryQuerySet(models.QuerySet):
    def visible_to(self, actor) -> AuditEntryQuerySet:
        """The entries `actor` may read (access.audit_visibility_q): its namespaces' for an operator, all for superusers."""
        from access import audit_visibility_q

        return self.filter(audit_visibility_q(actor))
