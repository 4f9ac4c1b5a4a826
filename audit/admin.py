"""The audit trail in the admin: read-only, and narrowed to the operator's namespaces by the access module."""
from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

import access

from .models import AuditEntry

FIELDS = ["at", "actor", "actor_kind", "action", "object_type", "object_id", "namespace_path", "namespace_id",
          "before_json", "after_json", "request_id"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Operators read the entries of their namespaces (superusers all); nobody adds, changes or deletes one."""

    list_display = ["at", "actor", "action", "object_type", "object_id", "namespace_path"]
    list_filter = ["action", "actor_kind", "at", "object_type"]
    search_fields = ["=actor", "=object_id", "namespace_path", "=request_id"]
    search_help_text = "An actor (agent id or operator:<username>), an object id, a namespace path or a request id."
    date_hierarchy = "at"
    fields = FIELDS
    readonly_fields = FIELDS
    list_per_page = 100
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(access.audit_visibility_q(request.user))

    @admin.display(description="before")
    def before_json(self, obj):
        return _json(obj.before)

    @admin.display(description="after")
    def after_json(self, obj):
        return _json(obj.after)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _json(value):
    if value is None:
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))
