"""The bases every TMWS admin page is built on: scoped to the operator's namespaces, writing through services.

Who sees what in the admin:
- A staff user needs the Django model permission `view_<model>` to open a model's pages at all.
- Superusers see and change every row. Other operators see the rows inside the namespaces (and their
  subtrees) on which they hold the guardian object permission `view_namespace` or `change_namespace`,
  and change them where they hold `change_namespace`. The rule itself lives in `access`.
- Writes go through the domain services, so the admin enforces the same rules as the API.
"""
from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

import access
from core.admin import ServiceWritesMixin
from core.models import TREE_ORDER


class OperatorScopedAdmin(admin.ModelAdmin):
    """Narrows every page to the operator's namespaces (see the module docstring).

    `scope_field` is the lookup of the row's namespace (e.g. "namespace", "user__agent__namespace").
    """

    scope_field = "namespace"
    # Foreign keys to Namespace whose choices are limited to the namespaces the operator may change.
    namespace_choice_fields: tuple[str, ...] = ("namespace",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(self.scope_q(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.namespace_choice_fields:
            kwargs["queryset"] = db_field.related_model.objects.filter(
                access.operator_scope_q(request.user, "id", ["change_namespace"])
            ).order_by(TREE_ORDER)
            if not request.user.is_superuser and db_field.name == self.scope_field:
                # A row without a namespace would drop out of the operator's own view.
                kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def scope_q(self, request, codenames=access.OPERATOR_NAMESPACE_PERMISSIONS) -> Q:
        return access.operator_scope_q(request.user, self.scope_field, codenames)

    def changeable(self, request, queryset):
        """The rows of `queryset` the operator may change (its change scope)."""
        return queryset.filter(self.scope_q(request, ["change_namespace"]))

    def namespace_id_of(self, obj):
        value = obj
        parts = self.scope_field.split("__")
        for part in parts[:-1]:
            value = getattr(value, part, None)
            if value is None:
                return None
        return getattr(value, parts[-1] + "_id", None)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        # Model-level "view" opens the pages; guardian rights on namespaces decide which rows change.
        if obj is None:
            return self.has_view_permission(request)
        return self.has_view_permission(request) and access.operator_can_change_in(request.user, self.namespace_id_of(obj))

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)


class ServiceModelAdmin(ServiceWritesMixin, OperatorScopedAdmin):
    """An operator-scoped admin whose writes go through the domain services (core.admin.ServiceWritesMixin)."""
