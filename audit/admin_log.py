"""Every add, change and delete made in the Django admin goes into the audit trail.

The admin site (`tmws_site.admin_site`) gives every registered ModelAdmin this mixin, Django's own (users,
groups) included. Each entry names the object by model and id, with the names of the changed fields; the
values are not kept (a memory's content is such a value). Django's own admin log (`django_admin_log`, the
"Recent actions" and object history pages) names objects by `log_label(obj)` where the ModelAdmin defines it
(memories are named by id, so no preview of their content outlives a delete there either).
"""
from __future__ import annotations

import json

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType

from .choices import AuditAction
from .services import record

CHANGED_FIELDS = "_audit_changed_fields"


class AuditedAdminMixin:
    """Records the admin's adds, changes and deletes (Django calls log_addition, log_change, log_deletions)."""

    def construct_change_message(self, request, form, formsets, add=False):
        # The field names (not their labels, never their values) for the entry log_change writes next.
        setattr(request, CHANGED_FIELDS, sorted(form.changed_data) if form is not None else [])
        return super().construct_change_message(request, form, formsets, add)

    def log_addition(self, request, obj, message):
        self._audit(request, AuditAction.ADMIN_ADD, obj, after={"fields": self._changed_fields(request, message)})
        return self._log(request, obj, ADDITION, message)

    def log_change(self, request, obj, message):
        self._audit(request, AuditAction.ADMIN_CHANGE, obj, after={"fields": self._changed_fields(request, message)})
        return self._log(request, obj, CHANGE, message)

    def log_deletions(self, request, queryset):
        # Called before the objects are deleted, in the same transaction.
        objects = list(queryset)
        for obj in objects:
            self._audit(request, AuditAction.ADMIN_DELETE, obj)
        return [self._log(request, obj, DELETION, "") for obj in objects]

    def _audit(self, request, action, obj, after=None) -> None:
        namespace_of = getattr(self, "namespace_id_of", None)
        namespace_id = namespace_of(obj) if namespace_of is not None else None
        record(request.user, action, obj=obj, namespace=namespace_id, before=None, after=after)

    def _log(self, request, obj, flag, message):
        label = getattr(self, "log_label", None)
        if label is None:
            return LogEntry.objects.log_actions(request.user.pk, [obj], flag, message, single_object=True)
        return LogEntry.objects.create(
            user_id=request.user.pk, content_type_id=ContentType.objects.get_for_model(obj, for_concrete_model=False).pk,
            object_id=str(obj.pk), object_repr=label(obj)[:200], action_flag=flag,
            change_message=_as_text(_only_field_names(message)),
        )

    @staticmethod
    def _changed_fields(request, message) -> list[str]:
        fields = getattr(request, CHANGED_FIELDS, None)
        if fields is not None:
            delattr(request, CHANGED_FIELDS)
            return fields
        # A page that wrote its own message (a password change): the field labels it names.
        return sorted({name for part in message or [] if isinstance(part, dict)
                       for name in part.get("changed", {}).get("fields", [])}) if isinstance(message, list) else []


def _only_field_names(message):
    """A change message without the names of inline objects (`object`), which may quote content."""
    if not isinstance(message, list):
        return message
    return [{verb: {key: value for key, value in details.items() if key != "object"} for verb, details in part.items()}
            if isinstance(part, dict) else part for part in message]


def _as_text(message) -> str:
    return json.dumps(message) if isinstance(message, list) else (message or "")


def audited(admin_class):
    """`admin_class` with the audit mixin in front (itself when it has the mixin already)."""
    if issubclass(admin_class, AuditedAdminMixin):
        return admin_class
    return type(admin_class.__name__, (AuditedAdminMixin, admin_class),
                {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__})
