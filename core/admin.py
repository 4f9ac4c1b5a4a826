"""Admin building blocks that know no app: writes through services, counts without joins.

The operator's namespace scope is added on top by `access.admin_base`, which every app's admin uses.
"""
from __future__ import annotations

from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

from .errors import ServiceError


class ServiceWritesMixin:
    """For a ModelAdmin whose adds, changes and deletes go through the domain services.

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
