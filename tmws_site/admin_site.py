"""The admin site of TMWS 2: Django's, titled for the product, with the operator dashboard on its index and
every admin change in the audit trail (audit.admin_log)."""
from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.urls import NoReverseMatch, path, reverse

# The navigation and the app list follow an operator's work: who acts, where, what they remember, what they do,
# what the service learns, and what happened. (label, permission, URL name)
OPERATOR_NAV = [
    ("Agents", "agents.view_agent", "admin:agents_agent_changelist"),
    ("Namespaces", "namespaces.view_namespace", "admin:namespaces_namespace_changelist"),
    ("Memories", "memories.view_memory", "admin:memories_memory_changelist"),
    ("Search as an agent", "memories.view_memory", "admin:search_as_agent"),
    ("Tasks", "workflows.view_task", "admin:workflows_task_changelist"),
    ("Workflow runs", "workflows.view_workflowrun", "admin:workflows_workflowrun_changelist"),
    ("Learning", "memories.view_learningpattern", "admin:memories_learningpattern_changelist"),
    ("Audit trail", "audit.view_auditentry", "admin:audit_auditentry_changelist"),
]
APP_ORDER = ["agents", "namespaces", "memories", "workflows", "audit", "compat", "auth"]


class TmwsAdminSite(admin.AdminSite):
    site_header = "TMWS 2"
    site_title = "TMWS 2"
    index_title = "Operations"
    # The header's navigation (OPERATOR_NAV) takes the place of Django's sidebar, which took a quarter of the width.
    enable_nav_sidebar = False

    def register(self, model_or_iterable, admin_class=None, **options):
        """Register as Django does, with every add, change and delete of the page recorded in the audit trail."""
        from audit.admin_log import audited  # names models: imported once they are loaded

        return super().register(model_or_iterable, audited(admin_class or admin.ModelAdmin), **options)

    def get_urls(self):
        from .admin_views import agent_suggestions_view, search_as_agent_view  # imports models: loaded once they are

        return [
            path("search-as-agent/", self.admin_view(lambda request: search_as_agent_view(request, self)),
                 name="search_as_agent"),
            path("agents/agent/<uuid:object_id>/suggestions/",
                 self.admin_view(lambda request, object_id: agent_suggestions_view(request, self, object_id)),
                 name="agent_suggestions"),
            *super().get_urls(),
        ]

    def each_context(self, request):
        return {**super().each_context(request), "operator_nav": _operator_nav(request.user)}

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        return sorted(apps, key=lambda app: (APP_ORDER.index(app["app_label"]) if app["app_label"] in APP_ORDER
                                             else len(APP_ORDER), app["name"]))

    def index(self, request, extra_context=None):
        """The app list with the operator dashboard above it (templates/admin/index.html)."""
        from .dashboard import operator_charts, operator_dashboard  # reads every app's models: loaded once they are

        return super().index(request, extra_context={
            "dashboard": operator_dashboard(request), "charts": operator_charts(request), **(extra_context or {})})


class TmwsAdminConfig(AdminConfig):
    """Installs TmwsAdminSite as `admin.site`, so every app's `@admin.register` lands on it."""

    default_site = "tmws_site.admin_site.TmwsAdminSite"


def _operator_nav(user) -> list[dict]:
    if not getattr(user, "is_staff", False):
        return []
    items = []
    for label, permission, name in OPERATOR_NAV:
        if not user.has_perm(permission):
            continue
        try:
            items.append({"label": label, "url": reverse(name)})
        except NoReverseMatch:  # a page whose app is not installed
            continue
    return items
