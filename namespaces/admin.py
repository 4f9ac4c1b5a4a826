"""Operator UI for namespaces: the tree, members and roles (who sees what: access.admin_base)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from guardian.admin import GuardedModelAdminMixin
from guardian.shortcuts import get_user_perms

import access
import audit
from access.admin_base import ServiceModelAdmin
from core.admin import count_of
from core.errors import ServiceError

from . import services
from .contracts import MAX_AGENT_ID_LENGTH, AddMember, CreateNamespace, UpdateNamespace
from .models import (
    ROLE_PERMISSIONS,
    TREE_ORDER,
    Namespace,
    NamespaceUserObjectPermission,
    Role,
    agent_model,
    memory_model,
)

# --- Namespaces -----------------------------------------------------------------------------


class NamespaceForm(forms.ModelForm):
    class Meta:
        model = Namespace
        fields = ["namespace", "display_name", "description", "access_policy", "parent", "metadata"]


class MemberForm(forms.Form):
    agent_id = forms.CharField(max_length=MAX_AGENT_ID_LENGTH, label="Agent id")
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
                memory_count=count_of(memory_model().objects.all(), "namespace"),
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
        if obj is None:
            return super().has_change_permission(request, obj)
        return self.has_view_permission(request) and access.is_namespace_admin(request.user, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is None:
            return super().has_delete_permission(request, obj)
        return self.has_view_permission(request) and access.can_delete_namespace(request.user, obj)

    # Writes.
    def save_via_service(self, request, form, change):
        data = form.cleaned_data
        parent = data.get("parent")
        if not change:
            return services.create_namespace(
                request.user,
                CreateNamespace.parse({
                    "namespace": data["namespace"],
                    "display_name": data.get("display_name", ""),
                    "description": data.get("description", ""),
                    "access_policy": data["access_policy"],
                    "parent_namespace": parent.namespace if parent else None,
                    "metadata": data.get("metadata") or {},
                }),
            )
        changes = self.changes_from(form, ["display_name", "description", "access_policy", "metadata"])
        if "metadata" in changes:
            changes["metadata"] = changes["metadata"] or {}
        if "parent" in form.changed_data:
            changes["parent_namespace"] = parent.namespace if parent else None
        namespace = Namespace.objects.select_for_update().get(pk=form.instance.pk)
        return services.update_namespace(request.user, namespace, UpdateNamespace.parse(changes))

    def delete_via_service(self, request, obj):
        services.delete_namespace(request.user, obj)

    # Object permissions (guardian): granting operators rights is for superusers only, since a
    # right on a namespace is also the right to hand it on.
    def obj_perms_manage_view(self, request, object_pk):
        self._require_superuser(request)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        self._require_superuser(request)
        namespace = self.get_object(request, object_pk) if request.method == "POST" else None
        user = get_user_model().objects.filter(pk=user_id).first() if str(user_id).isdigit() else None
        if namespace is None or user is None:
            return super().obj_perms_manage_user_view(request, object_pk, user_id)
        before = sorted(get_user_perms(user, namespace))
        response = super().obj_perms_manage_user_view(request, object_pk, user_id)
        after = sorted(get_user_perms(user, namespace))
        if after != before:  # guardian's form saved them: the audit trail names the operator and its rights
            audit.record(request.user, audit.AuditAction.NAMESPACE_OPERATOR_RIGHTS, obj=user, namespace=namespace,
                         before={"user": user.get_username(), "permissions": before},
                         after={"user": user.get_username(), "permissions": after})
        return response

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
        if "remove" in request.POST:
            agent_id, role = request.POST["remove"], None
        elif form.is_valid():
            agent_id, role = form.cleaned_data["agent_id"], form.cleaned_data["role"]
        else:
            return False
        try:
            with transaction.atomic():
                if role is None:
                    agent = services.get_agent(agent_id)
                    services.remove_member(request.user, namespace, agent)
                else:
                    member = AddMember.parse({"agent_id": agent_id, "role": role})
                    agent = services.add_member(request.user, namespace, member)
        except ServiceError as exc:
            messages.error(request, exc.message)
            return False
        verb = "removed from" if role is None else f"is now {role} of"
        messages.success(request, f"{agent.agent_id} {verb} {namespace.namespace}.")
        return True

    @staticmethod
    def _members(namespace) -> list[dict]:
        grants = NamespaceUserObjectPermission.objects.filter(
            content_object=namespace, permission__codename__in=ROLE_PERMISSIONS.values()
        ).values_list("user_id", "permission__codename")
        roles: dict = {}
        for user_id, codename in grants:
            if codename == ROLE_PERMISSIONS[Role.ADMIN] or user_id not in roles:
                roles[user_id] = Role.ADMIN if codename == ROLE_PERMISSIONS[Role.ADMIN] else Role.MEMBER
        agents = agent_model().objects.filter(Q(user_id__in=roles) | Q(namespace=namespace)).order_by("agent_id")
        return [
            {"agent": agent, "role": roles.get(agent.user_id, Role.MEMBER), "home": agent.namespace_id == namespace.pk}
            for agent in agents
        ]
