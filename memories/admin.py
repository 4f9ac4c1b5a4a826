"""Operator UI for memories. The raw embedding vector is never loaded into or shown on these pages."""
from __future__ import annotations

import uuid
from contextvars import ContextVar

from django import forms
from django.contrib import admin, messages
from django.contrib.postgres.search import SearchQuery
from django.urls import reverse
from django.utils.html import format_html, format_html_join

import access
from access import explain
from access.admin_base import OperatorScopedAdmin, ServiceModelAdmin
from core.errors import ServiceError

from . import consolidation, services
from .contracts import MergeMemories, StoreMemory, UpdateMemory
from .models import TEXT_SEARCH_CONFIG, LearningPattern, Memory, MemoryVersion, preview

EDITABLE_FIELDS = ["content", "namespace", "access_level", "memory_category", "context_tags", "learning_weight", "metadata"]
READ_ONLY_FIELDS = [
    "id", "embedding_status", "embedding_model", "embedding_error", "embedding_attempts", "access_count",
    "last_accessed_at",
    "shared_with", "readers", "created_at", "updated_at", "history",
]


class MemoryForm(forms.ModelForm):
    # A plain id, not a related-object widget: such a widget renders whatever memory an id names,
    # and the service checks that the operator may see it.
    parent_memory_id = forms.UUIDField(required=False, label="Parent memory id")

    class Meta:
        model = Memory
        fields = ["agent", *EDITABLE_FIELDS]
        widgets = {"content": forms.Textarea(attrs={"rows": 8, "cols": 100})}


@admin.register(Memory)
class MemoryAdmin(ServiceModelAdmin):
    form = MemoryForm
    list_display = [
        "preview", "agent", "namespace", "access", "memory_category", "embedding_state", "hits", "last_hit", "created",
    ]
    list_filter = [
        "access_level", "embedding_status", "memory_category", ("namespace", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["agent", "namespace", "usage"]
    search_fields = ["content"]
    search_help_text = "Full-text search on the content (words, \"quoted phrases\", -excluded), or a memory id."
    autocomplete_fields = ["agent"]
    actions = ["re_embed", "merge"]
    service_field_names = {"agent_id": "agent"}

    def get_queryset(self, request):
        # The vector and the text-search vector are large and never shown.
        return super().get_queryset(request).defer("embedding", "search_vector")

    def get_object(self, request, object_id, from_field=None):
        memory = super().get_object(request, object_id, from_field)
        if memory is not None:
            memory.shown_to = request.user  # `parent` shows the parent only to who may read it
        return memory

    def get_fieldsets(self, request, obj=None):
        parent = "parent" if obj is not None else "parent_memory_id"
        fieldsets = [(None, {"fields": ["agent", parent, *EDITABLE_FIELDS]})]
        if obj is not None:
            fieldsets.append(("Embedding and use", {"fields": READ_ONLY_FIELDS}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        # The owner and the parent are fixed once a memory exists (the service does not move them).
        return ["agent", "parent", *READ_ONLY_FIELDS] if obj is not None else []

    @admin.display(description="parent memory")
    def parent(self, obj):
        if obj.parent_memory_id is None:
            return "—"
        viewer = getattr(obj, "shown_to", None)
        parent = Memory.objects.visible_to(viewer).filter(pk=obj.parent_memory_id).only("content").first()
        if parent is None:
            return f"{obj.parent_memory_id} (outside your namespaces)"
        return f"{parent.pk}: {parent.preview}"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        # The generated tsvector column has a GIN index; a substring scan would read every row.
        query = SearchQuery(term, config=TEXT_SEARCH_CONFIG, search_type="websearch")
        return queryset.filter(search_vector=query), False

    def log_label(self, obj):
        """How Django's admin log names a memory: by id, never by a preview of its content (audit.admin_log)."""
        return f"memory {obj.pk}"

    @admin.display(description="content", ordering="created_at")
    def preview(self, obj):
        return obj.preview

    @admin.display(description="embedding", ordering="embedding_status")
    def embedding_state(self, obj):
        return obj.embedding_status

    @admin.display(description="hits", ordering="usage__access_count")
    def hits(self, obj):
        return obj.access_count

    @admin.display(description="last hit", ordering="usage__last_accessed_at")
    def last_hit(self, obj):
        return f"{obj.last_accessed_at:%Y-%m-%d %H:%M}" if obj.last_accessed_at else "—"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return f"{obj.created_at:%Y-%m-%d %H:%M}"

    @admin.display(description="access", ordering="access_level")
    def access(self, obj):
        """The level's name: its rule is in the filter and on the memory's page, not on every row."""
        return obj.access_level

    @admin.display(description="shared with agents")
    def shared_with(self, obj):
        return ", ".join(services.shared_agent_ids(obj)) or "—"

    @admin.display(description="who can read this")
    def readers(self, memory):
        """Every agent that may read the memory, and why (access.explain); operators are not listed."""
        viewer = getattr(memory, "shown_to", None)
        if viewer is None or memory.pk is None:
            return "—"
        listed = explain.readers(viewer, memory)
        if listed["everyone"]:
            return explain.describe({"reason": listed["reason"]})
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", (
            (entry["agent_id"], "; ".join(explain.describe(reason) for reason in entry["reasons"]))
            for entry in listed["agents"]))
        more = format_html("<p>Only the first {} agents are listed.</p>", explain.MAX_LISTED_READERS) \
            if listed["truncated"] else ""
        return format_html('<table class="readers"><tr><th>agent</th><th>why</th></tr>{}</table>{}', rows, more) \
            if rows else "nobody but operators"

    @admin.display(description="history")
    def history(self, memory):
        """The versions the operator could read while they were current, newest first."""
        viewer = getattr(memory, "shown_to", None)
        if viewer is None or memory.pk is None:
            return "—"
        versions = MemoryVersion.objects.visible_to(viewer).for_display().filter(memory=memory)
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (version.version, version.get_change_display(), version.changed_at.strftime("%Y-%m-%d %H:%M:%S"),
             _changed_by(version), f"{version.access_level} in {version.namespace.namespace}", preview(version.content))
            for version in versions.order_by("-version")[:HISTORY_SHOWN]
        ))
        header = format_html("<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                             "version", "change", "at", "by", "access", "content")
        return format_html("<table>{}{}</table>", header, rows) if rows else "—"

    # Permissions: the access module decides per memory.
    def has_change_permission(self, request, obj=None):
        if obj is None:
            return super().has_change_permission(request)
        return self.has_view_permission(request) and access.can(request.user, access.Action.CHANGE, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is None:
            return super().has_delete_permission(request)
        return self.has_view_permission(request) and access.can(request.user, access.Action.DELETE, obj)

    # Writes.
    def save_via_service(self, request, form, change):
        data = form.cleaned_data
        if not change:
            agent, parent = data.get("agent"), data.get("parent_memory_id")
            return services.create_memory(
                request.user,
                StoreMemory.parse({
                    "content": data["content"],
                    "namespace": data["namespace"].namespace,
                    "access_level": data["access_level"],
                    "agent_id": agent.agent_id if agent else None,
                    "parent_memory_id": str(parent) if parent else None,
                    "memory_category": data["memory_category"],
                    "context_tags": data.get("context_tags") or [],
                    "learning_weight": data["learning_weight"],
                    "metadata": data.get("metadata") or {},
                }),
            )
        changes = self.changes_from(form, EDITABLE_FIELDS)
        if "namespace" in changes:
            changes["namespace"] = changes["namespace"].namespace
        for field, empty in (("context_tags", []), ("metadata", {})):
            if field in changes and changes[field] is None:
                changes[field] = empty
        memory = Memory.objects.select_for_update().defer("embedding", "search_vector").get(pk=form.instance.pk)
        return services.update_memory(request.user, memory, UpdateMemory.parse(changes))

    def delete_via_service(self, request, obj):
        services.delete_memory(request.user, obj)

    @admin.action(description="Re-embed the selected memories", permissions=["change"])
    def re_embed(self, request, queryset):
        queued = services.re_embed_memories(self.changeable(request, queryset).values_list("pk", flat=True))
        messages.success(request, f"Queued {queued} memory(ies) for embedding.")
        skipped = queryset.count() - queued
        if skipped:
            messages.error(request, f"Skipped {skipped} memory(ies) outside the namespaces you may change.")

    @admin.action(description="Merge the selected memories into one (the oldest leads; originals restorable)",
                  permissions=["change"])
    def merge(self, request, queryset):
        ids = [str(pk) for pk in queryset.order_by("created_at", "pk").values_list("pk", flat=True)]
        try:
            merged = consolidation.merge_memories(request.user, MergeMemories.parse({"memory_ids": ids}))
        except ServiceError as exc:
            messages.error(request, f"Not merged: {exc.message}")
            return
        messages.success(request, format_html('Merged {} memories into <a href="{}">{}</a>; the originals are retired '
                                              "and can be restored from their history.", len(ids),
                                              reverse("admin:memories_memory_change", args=[merged.pk]), merged.preview))


HISTORY_SHOWN = 50


def _changed_by(version) -> str:
    if version.changed_by_agent_id is not None:
        return version.changed_by_agent.agent_id if version.changed_by_agent else "(retired agent)"
    if version.changed_by_user_id is not None:
        return f"operator {version.changed_by_user.username}" if version.changed_by_user else "(former operator)"
    return "system"


_viewer: ContextVar = ContextVar("learning_pattern_viewer", default=None)


@admin.register(LearningPattern)
class LearningPatternAdmin(OperatorScopedAdmin):
    """Read-only: what the nightly pattern job learned about each agent, narrowed to what the operator may read."""

    scope_field = "agent__namespace"
    list_display = ["agent", "computed_at", "window_end", "events", "memories", "topic_count"]
    list_select_related = ["agent"]
    search_fields = ["agent__agent_id"]
    fields = ["agent", "computed_at", "window_start", "window_end", "events", "memories", "learned"]
    readonly_fields = fields

    @admin.display(description="topics")
    def topic_count(self, obj):
        return len(obj.topics)

    @admin.display(description="patterns (memories you may read)")
    def learned(self, obj):
        import json

        from .patterns import pattern_for

        shown = pattern_for(_viewer.get(), obj.agent)
        shown = {name: value for name, value in shown.items()
                 if name not in ("agent_id", "computed_at", "window_start", "window_end", "events", "memories")}
        return format_html("<pre>{}</pre>", json.dumps(shown, indent=2, default=str))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        token = _viewer.set(request.user)  # the page shows the pattern as this operator may see it
        try:
            response = super().changeform_view(request, object_id, form_url, extra_context)
            return response.render() if hasattr(response, "render") else response  # rendered while it is set
        finally:
            _viewer.reset(token)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
