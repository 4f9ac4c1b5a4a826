"""Operator UI for agents and their API keys. Key plaintexts are shown once, in a message; hashes never."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.html import format_html_join

from access.admin_base import OperatorScopedAdmin, ServiceModelAdmin
from core import extensions
from core.errors import ServiceError

from . import services
from .contracts import DEFAULT_AGENT_TYPE, PurgeAgent, RegisterAgent, UpdateAgent
from .models import Agent, ApiKey

AGENT_FIELDS = [
    "agent_id", "display_name", "agent_type", "namespace", "access_level", "is_active",
    "capabilities", "configuration", "metadata",
]
UPDATABLE_FIELDS = ["display_name", "agent_type", "access_level", "is_active", "capabilities", "configuration", "metadata"]


class AgentForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = AGENT_FIELDS


def show_key_once(request, agent, key: str, why: str) -> None:
    messages.warning(
        request, f"{why} API key for {agent.agent_id}: {key} — copy it now; it is stored only as a hash and not shown again."
    )


@admin.register(Agent)
class AgentAdmin(ServiceModelAdmin):
    form = AgentForm
    list_display = ["agent_id", "display_name", "agent_type", "namespace", "access_level", "is_active", "last_activity"]
    list_filter = ["access_level", "is_active", "agent_type", ("namespace", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["namespace"]
    search_fields = ["agent_id", "display_name", "agent_type"]
    actions = ["rotate_keys", "deactivate", "purge"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": AGENT_FIELDS})]
        if obj is not None:
            fieldsets.append(
                ("Principal and keys", {"fields": ["user", "api_keys", "last_activity", "created_at", "updated_at"]})
            )
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["agent_id", "user", "api_keys", "last_activity", "created_at", "updated_at"]

    @admin.display(description="API keys")
    def api_keys(self, obj):
        keys = ApiKey.objects.filter(user_id=obj.user_id).order_by("-created_at")
        rows = [
            (str(key), key.name, f"created {key.created_at:%Y-%m-%d %H:%M}",
             f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active")
            for key in keys
        ]
        return format_html_join("", "<div><code>{}</code> {} — {}, {}</div>", rows) or "none"

    # Writes.
    def save_via_service(self, request, form, change):
        data = form.cleaned_data
        if not change:
            agent, key = services.register_agent(
                request.user,
                RegisterAgent.parse({
                    "agent_id": data["agent_id"],
                    "namespace": data["namespace"].namespace,
                    "display_name": data.get("display_name", ""),
                    "agent_type": data.get("agent_type") or DEFAULT_AGENT_TYPE,
                    "capabilities": data.get("capabilities") or {},
                    "configuration": data.get("configuration") or {},
                    "access_level": data["access_level"],
                    "metadata": data.get("metadata") or {},
                    "is_active": data.get("is_active", True),
                }),
            )
            agent.issued_key = key
            return agent
        changes = self.changes_from(form, UPDATABLE_FIELDS)
        for field in ("capabilities", "configuration", "metadata"):
            if field in changes:
                changes[field] = changes[field] or {}
        if "namespace" in form.changed_data:
            changes["namespace"] = data["namespace"].namespace
        agent = Agent.objects.select_for_update().select_related("user").get(pk=form.instance.pk)
        return services.update_agent(request.user, agent, UpdateAgent.parse(changes))

    def save_model(self, request, obj, form, change):
        key = getattr(obj, "issued_key", None)
        if key:
            show_key_once(request, obj, key, "New")

    def has_delete_permission(self, request, obj=None):
        # Agents own memories (protected); they are deactivated, not deleted.
        return False

    # Actions.
    @admin.action(description="Rotate the API key of the selected agents (revokes their keys)", permissions=["change"])
    def rotate_keys(self, request, queryset):
        agents = list(self.changeable(request, queryset).select_related("user"))
        for agent in agents:
            show_key_once(request, agent, services.rotate_key(request.user, agent), "Rotated")
        self._report_skipped(request, queryset, agents)

    @admin.action(description="Deactivate the selected agents and revoke their keys", permissions=["change"])
    def deactivate(self, request, queryset):
        agents = list(self.changeable(request, queryset).select_related("user"))
        for agent in agents:
            services.retire_agent(request.user, agent)
        if agents:
            messages.success(request, f"Deactivated {len(agents)} agent(s); their keys are revoked.")
        self._report_skipped(request, queryset, agents)

    @admin.action(description="Purge the selected agents: erase them and their data for good", permissions=["change"])
    def purge(self, request, queryset):
        """A confirmation page listing what would go (a dry run per agent); erasing takes a second, explicit click."""
        agents = list(queryset.select_related("user", "namespace").order_by("agent_id"))
        hand_to = (request.POST.get("hand_to") or "").strip() or None
        dry_run = request.POST.get("confirm") != "yes"
        reports, refused = [], []
        for agent in agents:
            try:
                data = PurgeAgent.parse({"purge": True, "hand_to": hand_to, "dry_run": dry_run})
                reports.append(extensions.call("purge_agent", request.user, agent, data, field="purge"))
            except ServiceError as exc:
                refused.append(f"{agent.agent_id}: {exc.message}")
        if not dry_run:
            if reports:
                messages.success(request, f"Purged {len(reports)} agent(s): "
                                 + ", ".join(report["agent_id"] for report in reports) + ".")
            for reason in refused:
                messages.error(request, f"Not purged: {reason}")
            return None
        return TemplateResponse(request, "admin/agents/agent/purge_confirmation.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Purge agents",
            "agents": agents, "reports": reports, "refused": refused, "hand_to": hand_to or "",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })

    @staticmethod
    def _report_skipped(request, queryset, done) -> None:
        skipped = queryset.count() - len(done)
        if skipped:
            messages.error(request, f"Skipped {skipped} agent(s) outside the namespaces you may change.")


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(OperatorScopedAdmin):
    """Read-only: keys are issued with their agent (or by `create_operator_key`) and revoked here."""

    # Keys of agents, by the agent's home namespace; operators' own script keys stay with superusers.
    scope_field = "user__agent__namespace"
    list_display = ["__str__", "owner", "name", "created_at", "last_used_at", "revoked_at", "is_active"]
    list_filter = [KeyStateFilter, "created_at"]
    list_select_related = ["user", "user__agent"]
    search_fields = ["user__username", "name", "lookup"]
    fields = ["key", "owner", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="key")
    def key(self, obj):
        return str(obj)

    @admin.display(description="owner", ordering="user__username")
    def owner(self, obj):
        agent = getattr(obj.user, "agent", None)
        return f"agent {agent.agent_id}" if agent is not None else f"operator {obj.user.username}"

    @admin.display(boolean=True, description="active")
    def is_active(self, obj):
        return obj.revoked_at is None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request):
        return self.has_view_permission(request)

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = services.revoke_api_keys(request.user, self.changeable(request, queryset))
        messages.success(request, f"Revoked {revoked} key(s).")
