"""The admin site of TMWS 2: Django's, titled for the product, with the operator dashboard on its index."""
from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class TmwsAdminSite(admin.AdminSite):
    site_header = "TMWS 2"
    site_title = "TMWS 2"
    index_title = "Operations"

    def index(self, request, extra_context=None):
        """The app list with the operator dashboard above it (templates/admin/index.html)."""
        from .dashboard import operator_dashboard  # reads every app's models: loaded once they are

        return super().index(request, extra_context={"dashboard": operator_dashboard(request), **(extra_context or {})})


class TmwsAdminConfig(AdminConfig):
    """Installs TmwsAdminSite as `admin.site`, so every app's `@admin.register` lands on it."""

    default_site = "tmws_site.admin_site.TmwsAdminSite"
