"""Operator UI for namespaces, plus the pieces every TMWS admin page shares.

Who sees what in the admin:
- A staff user needs the Django model permission `view_<model>` to open a model's pages at all.
- Superusers see and change every row. Other operators see the rows inside the namespaces (and their
  subtrees) on which they hold the guardian object permission `view_namespace` or `change_namespace`,
  and change them where they hold `change_namespace`. The rule itself lives in `namespaces.access`.
- Writes go through the domain services, so the admin enforces the same rules as the API.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Collate, Replace
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from guardian.admin import GuardedModelAdminMixin

from memories.choices import EmbeddingStatus
from memories.models import Memory
from tmws_site.errors import ServiceError
from tmws_site.models import count_by

from . import access, services
from .models import ROLE_PERMISSIONS, Namespace, NamespaceUserObjectPermission, Role

# --- Shared bases ---------------------------------------------------------------------------


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


# --- Namespaces -----------------------------------------------------------------------------

# Byte order of the path with "/" sorting before every slug character keeps each subtree right under
# its root ("team/a" before "team-x"), whatever the database's collation.
TREE_ORDER = Collate(Replace(F("path"), Value("/"), Value(" ")), "C")

class NamespaceForm(forms.ModelForm):
    class Meta:
        model = Namespace
        fields = ["namespace", "display_name", "description", "access_policy", "parent", "metadata"]


class MemberForm(forms.Form):
    agent_id = forms.CharField(max_length=128, label="Agent id")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


@admin.register(Namespace)
class NamespaceAdmin(GuardedModelAdminMixin, ServiceModelAdmin):
    form = NamespaceForm
    change_form_template = "admin/namespaces/namespace/change_form.html"
    members_template = "admin/namespaces/namespace/members.html"
    list_display = ["tree_name", "display_name", "parent", "access_policy", "member_count", "memory_count"]
    list_filter = ["access_policy", "depth"]
    list_select_related = ["parent"]
    search_fields = ["namespace", "display_name", "path"]
    readonly_fields = ["path", "depth", "created_at", "updated_at"]
    service_field_names = {"parent_namespace": "parent"}
    scope_field = "id"
    # Operators create and move namespaces only under namespaces they may change.
    namespace_choice_fields = ("parent",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=count_of(
                    NamespaceUserObjectPermission.objects.filter(permission__codename=ROLE_PERMISSIONS[Role.MEMBER]),
                    "content_object",
                ),
                memory_count=count_of(Memory.objects.all(), "namespace"),
            )
        )

    def get_ordering(self, request):
        return [TREE_ORDER]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return ["namespace", *fields] if obj is not None else fields

    @admin.display(description="namespace", ordering=TREE_ORDER)
    def tree_name(self, obj):
        marker = "└ " if obj.depth else ""
        return format_html('<span style="padding-left: {}em">{}{}</span>', obj.depth * 1.5, marker, obj.namespace)

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj):
        url = reverse("admin:namespaces_namespace_members", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.member_count)

    @admin.display(description="memories", ordering="memory_count")
    def memory_count(self, obj):
        return obj.memory_count

    # Permissions: the access module decides, per namespace.
    def namespace_id_of(self, obj):
        return obj.pk

    def has_change_permission(self, request, obj=None):
        if obj is None or request.user.is_superuser:
            return super().has_change_permission(request, obj)
        return self.has_view_permission(request) and access.is_namespace_admin(request.user, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is None or request.user.is_superuser:
            return super().has_delete_permission(request, obj)
        return self.has_view_permission(request) and access.can_delete_namespace(request.user, obj)

    # Writes.
    def save_via_service(self, request, form, change):
        data = form.cleaned_data
        parent = data.get("parent")
        if not change:
            return services.create_namespace(
                request.user,
                namespace=data["namespace"],
                display_name=data.get("display_name", ""),
                description=data.get("description", ""),
                access_policy=data["access_policy"],
                parent_namespace=parent.namespace if parent else None,
                metadata=data.get("metadata") or {},
            )
        changes = self.changes_from(form, ["display_name", "description", "access_policy", "metadata"])
        if "metadata" in changes:
            changes["metadata"] = changes["metadata"] or {}
        if "parent" in form.changed_data:
            changes["parent_namespace"] = parent.namespace if parent else None
        namespace = Namespace.objects.select_for_update().get(pk=form.instance.pk)
        return services.update_namespace(request.user, namespace, **changes)

    def delete_via_service(self, request, obj):
        services.delete_namespace(request.user, obj)

    # Object permissions (guardian): granting operators rights is for superusers only, since a
    # right on a namespace is also the right to hand it on.
    def obj_perms_manage_view(self, request, object_pk):
        self._require_superuser(request)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        self._require_superuser(request)
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._require_superuser(request)
        return super().obj_perms_manage_group_view(request, object_pk, group_id)

    @staticmethod
    def _require_superuser(request):
        if not access.can_grant_operator_rights(request.user):
            raise PermissionDenied

    # Members: agents' roles, managed through the namespace services.
    def get_urls(self):
        members = path(
            "<path:object_id>/members/",
            self.admin_site.admin_view(self.members_view),
            name="namespaces_namespace_members",
        )
        return [members, *super().get_urls()]

    def members_view(self, request, object_id):
        namespace = self.get_object(request, object_id)
        if namespace is None or not self.has_view_permission(request, namespace):
            raise Http404("Namespace not found.")
        may_manage = access.can_add_member(request.user, namespace)
        form = MemberForm(request.POST if request.method == "POST" and "add" in request.POST else None)
        if request.method == "POST":
            if not may_manage:
                raise PermissionDenied
            if self._change_membership(request, namespace, form):
                return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Members of {namespace.namespace}",
            "opts": self.model._meta,
            "original": namespace,
            "members": self._members(namespace),
            "form": form,
            "may_manage": may_manage,
        }
        return TemplateResponse(request, self.members_template, context)

    def _change_membership(self, request, namespace, form) -> bool:
        from agents.services import get_agent

        if "remove" in request.POST:
            agent_id, role = request.POST["remove"], None
        elif form.is_valid():
            agent_id, role = form.cleaned_data["agent_id"], form.cleaned_data["role"]
        else:
            return False
        try:
            agent = get_agent(agent_id)
            with transaction.atomic():
                if role is None:
                    services.remove_member(request.user, namespace, agent)
                else:
                    services.add_member(request.user, namespace, agent, role)
        except ServiceError as exc:
            messages.error(request, exc.message)
            return False
        verb = "removed from" if role is None else f"is now {role} of"
        messages.success(request, f"{agent.agent_id} {verb} {namespace.namespace}.")
        return True

    @staticmethod
    def _members(namespace) -> list[dict]:
        from agents.models import Agent

        grants = NamespaceUserObjectPermission.objects.filter(
            content_object=namespace, permission__codename__in=ROLE_PERMISSIONS.values()
        ).values_list("user_id", "permission__codename")
        roles: dict = {}
        for user_id, codename in grants:
            if codename == ROLE_PERMISSIONS[Role.ADMIN] or user_id not in roles:
                roles[user_id] = Role.ADMIN if codename == ROLE_PERMISSIONS[Role.ADMIN] else Role.MEMBER
        agents = Agent.objects.filter(Q(user_id__in=roles) | Q(namespace=namespace)).order_by("agent_id")
        return [
            {"agent": agent, "role": roles.get(agent.user_id, Role.MEMBER), "home": agent.namespace_id == namespace.pk}
            for agent in agents
        ]


# --- Operator dashboard (the admin index) -----------------------------------------------------

def operator_dashboard(request) -> list[dict]:
    """Counts for the admin index, inside the operator's scope: one aggregate query per section."""
    from agents.models import Agent
    from workflows.models import Task, TaskStatus

    user = request.user
    sections = []
    if user.has_perm("agents.view_agent"):
        agents = Agent.objects.filter(access.operator_scope_q(user)).aggregate(
            total=Count("pk"), active=Count("pk", filter=Q(is_active=True))
        )
        sections.append({"title": "Agents", "url": "admin:agents_agent_changelist", "rows": [
            ("All", agents["total"], ""), ("Active", agents["active"], "is_active__exact=1"),
        ]})
    if user.has_perm("namespaces.view_namespace"):
        total = Namespace.objects.filter(access.namespace_visibility_q(user)).count()
        sections.append({"title": "Namespaces", "url": "admin:namespaces_namespace_changelist", "rows": [
            ("All", total, ""),
        ]})
    if user.has_perm("memories.view_memory"):
        sections.append({"title": "Memories by embedding status", "url": "admin:memories_memory_changelist",
                         "rows": _embedding_rows(Memory.objects.visible_to(user))})
    if user.has_perm("workflows.view_task"):
        sections.append({"title": "Tasks by status", "url": "admin:workflows_task_changelist",
                         "rows": _by_status(Task.objects.filter(access.operator_scope_q(user)), "status", TaskStatus)})
    for section in sections:
        section["url"] = reverse(section["url"])
    return sections


def _by_status(queryset, field: str, choices) -> list[tuple]:
    counts = count_by(queryset, field)
    rows = [("All", sum(counts.values()), "")]
    rows += [(label, counts.get(value, 0), f"{field}__exact={value}") for value, label in choices.choices]
    return rows


def _embedding_rows(memories) -> list[tuple]:
    """Memories by embedding status, and how long the longest-waiting pending one has waited (same query)."""
    stats = memories.embedding_summary()
    table = [("All", sum(count for count, _ in stats.values()), "")]
    table += [
        (label, stats.get(value, (0, None))[0], f"embedding_status__exact={value}")
        for value, label in EmbeddingStatus.choices
    ]
    oldest = stats.get(EmbeddingStatus.PENDING, (0, None))[1]
    waited = _duration(timezone.now() - oldest) if oldest else "none waits"
    table.append(("Pending: waiting longest", waited, f"embedding_status__exact={EmbeddingStatus.PENDING}"))
    return table


def _duration(delta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return "under a minute"


_stock_index = admin.site.index


def index_with_dashboard(request, extra_context=None):
    """The stock admin index with the operator dashboard above the app list (templates/admin/index.html)."""
    return _stock_index(request, extra_context={"dashboard": operator_dashboard(request), **(extra_context or {})})


# The URLconf picks the view up when it first reads admin.site.urls, after every admin module has loaded.
admin.site.index = index_with_dashboard
