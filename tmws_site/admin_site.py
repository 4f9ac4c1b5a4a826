"""The admin site of TMWS 2: Django's, titled for the product, with the operator dashboard on its index and
every admin change in the audit trail (audit.admin_log)."""
from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class TmwsAdminSite(admin.AdminSite):
    site_header = "TMWS 2"
    site_title = "TMWS 2"
    index_title = "Operations"

    def register(self, model_or_iterable, admin_class=None, **options):
        """Register as Django does, with every add, change and delete of the page recorded in the audit trail."""
        from audit.admin_log import audited  # names models: imported once they are loaded

        return super().register(model_or_iterable, audited(admin_class or admin.ModelAdmin), **options)

    def index(self, request, extra_context=None):
        """The app list with the operator dashboard above it (templates/admin/index.html)."""
        from .dashboard import operator_dashboard  # reads every app's models: loaded once they are

        return super().index(request, extra_context={"dashboard": operator_dashboard(request), **(extra_context or {})})


class TmwsAdminConfig(AdminConfig):
    """Installs TmwsAdminSite as `admin.site`, so every app's `@admin.register` lands on it."""

    default_site = "tmws_site.admin_site.TmwsAdminSite"
