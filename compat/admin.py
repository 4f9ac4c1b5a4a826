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
    search_fields = ("name", "display_name")

    @admin.display(description="Agent")
    def agent(self, persona):
        link = PersonaLink.objects.filter(persona=persona).select_related("agent").first()
        return link.agent if link and link.agent else "-"
