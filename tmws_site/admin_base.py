"""The bases every TMWS admin page is built on: scoped to the operator's namespaces, writing through services.

Who sees what in the admin:
- A staff user needs the Django model permission `view_<model>` to open a model's pages at all.
- Superusers see and change every row. Other operators see the rows inside the namespaces (and their
  subtrees) on which they hold the guardian object permission `view_namespace` or `change_namespace`,
  and change them where they hold `change_namespace`. The rule itself lives in `namespaces.access`.
- Writes go through the domain services, so the admin enforces the same rules as the API.
"""
from __future__ import annotations

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from namespaces import access
from namespaces.models import TREE_ORDER, Namespace

from .errors import ServiceError


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
            kwargs["queryset"] = Namespace.objects.filter(
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


class ServiceModelAdmin(OperatorScopedAdmin):
    """An admin whose adds, changes and deletes go through the domain services.

    Subclasses implement `save_via_service(request, form, change)` (returning the saved object) and,
    where deletion is allowed, `delete_via_service(request, obj)`. The form is checked by running the
    service inside a savepoint that is rolled back, so a refusal shows on the form like any other error.
    """

    # Service field names that differ from the form's field names.
    service_field_names: dict[str, str] = {}

    def save_via_service(self, request, form, change):
        raise NotImplementedError

    def delete_via_service(self, request, obj) -> None:
        raise NotImplementedError

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class ServiceCheckedForm(form_class):
            def clean(self):
                cleaned_data = super().clean()
                if not self.errors:
                    model_admin.check_with_service(request, self, change)
                return cleaned_data

        ServiceCheckedForm.__name__ = form_class.__name__
        return ServiceCheckedForm

    def check_with_service(self, request, form, change) -> None:
        try:
            with transaction.atomic():
                self.save_via_service(request, form, change)
                transaction.set_rollback(True)
        except ServiceError as exc:
            field = self.service_field_names.get(exc.field, exc.field)
            form.add_error(field if field in form.fields else None, exc.message)

    def save_form(self, request, form, change):
        return self.save_via_service(request, form, change)

    def save_model(self, request, obj, form, change):
        """Nothing left to save: `save_form` stored the object through the service."""

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        self.delete_via_service(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_via_service(request, obj)

    @staticmethod
    def changes_from(form, names) -> dict:
        """The submitted values of the changed fields among `names`."""
        return {name: form.cleaned_data[name] for name in names if name in form.changed_data}


def count_of(queryset, field: str):
    """A correlated COUNT of `queryset` rows whose `field` is the outer row (no joins that multiply rows)."""
    counted = queryset.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted), 0)
