"""Operators see persona-era records and import runs; both are written by migrations and commands only."""
from django.contrib import admin

from .models import ImportRun, Persona, PersonaLink


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "status", "source", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("source", "status", "options", "counts", "error", "finished_at", "created_at")


@admin.register(Persona)
class PersonaAdmin(ReadOnlyAdmin):
    list_display = ("name", "type", "role", "is_active", "agent")
    list_filter = ("type", "role")
    list_select_related = ("link__agent",)  # the agent column, joined rather than read per row
    search_fields = ("name", "display_name")

    @admin.display(description="Agent")
    def agent(self, persona):
        try:
            agent = persona.link.agent
        except PersonaLink.DoesNotExist:
            return "-"
        return agent or "-"
