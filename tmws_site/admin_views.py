"""Admin pages that are not a model's: "search as this agent" and an agent's learning suggestions.

An operator picks an agent in its scope and a query and sees exactly the results that agent gets, with their
scores: the search runs as the agent, under its row-level-security context, through the same code as the API.
It records nothing: it runs in a savepoint that is rolled back, so no hit is counted and no usage event is written
(both are sent after commit). A result the operator itself may not read (a public memory of another namespace,
for a scoped operator) is listed by rank and score only.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse

import access
from agents.models import Agent
from core.db import agent_context
from core.errors import ServiceError
from memories import learning
from memories import search as memory_search
from memories.choices import EmbeddingStatus
from memories.contracts import SEARCH_MODES, SearchMemories
from memories.models import Memory

SEARCH_PERMISSION = "memories.view_memory"


class SearchAsAgentForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=Agent.objects.none(), help_text="Agents in your namespaces.")
    query = forms.CharField(max_length=10_000, widget=forms.TextInput(attrs={"size": 60}))
    mode = forms.ChoiceField(choices=[(mode, mode) for mode in SEARCH_MODES], initial="hybrid")
    limit = forms.IntegerField(min_value=1, max_value=100, initial=10)
    namespace = forms.CharField(required=False, help_text="Only memories in this namespace (slug).")
    memory_category = forms.CharField(required=False)
    context_tags = forms.CharField(required=False, help_text="Only memories carrying all these tags (comma-separated).")

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = (Agent.objects.filter(access.operator_scope_q(user))
                                         .select_related("user", "namespace").order_by("agent_id"))

    def contract(self) -> SearchMemories:
        data = self.cleaned_data
        tags = [tag.strip() for tag in (data.get("context_tags") or "").split(",") if tag.strip()]
        return SearchMemories.parse({
            "query": data["query"], "mode": data["mode"], "limit": data["limit"],
            "namespace": data.get("namespace") or None, "memory_category": data.get("memory_category") or None,
            "context_tags": tags or None,
        })


def search_as_agent(agent, data: SearchMemories):
    """The agent's results for `data`, computed as the agent and then forgotten (nothing is recorded)."""
    with transaction.atomic():
        with agent_context(agent):
            result = memory_search.search(agent, memory_search.search_request(data))
        transaction.set_rollback(True)
    return result


@staff_member_required
def search_as_agent_view(request, admin_site):
    if not request.user.has_perm(SEARCH_PERMISSION):
        raise PermissionDenied
    form = SearchAsAgentForm(request.user, request.GET or None)
    result, rows = None, []
    if form.is_bound and form.is_valid():
        try:
            agent = form.cleaned_data["agent"]
            result = search_as_agent(agent, form.contract())
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            readable = set(Memory.objects.visible_to(request.user, current=False).filter(
                pk__in=[hit.memory.pk for hit in result.hits]).values_list("pk", flat=True))
            rows = [{"rank": rank, "hit": hit, "shown": hit.memory.pk in readable}
                    for rank, hit in enumerate(result.hits, start=1)]
    return TemplateResponse(request, "admin/search_as_agent.html", {
        **admin_site.each_context(request), "title": "Search as an agent", "form": form, "result": result,
        "rows": rows,
    })


@staff_member_required
def agent_suggestions_view(request, admin_site, object_id):
    """The learning suggestions for one agent, each with the button that carries it out.

    Memory actions post to the memory changelist's own admin actions (re-embed, merge), with the memories
    selected; applying categories runs here. What is listed is narrowed to what the operator may read.
    """
    agent = Agent.objects.select_related("namespace").filter(pk=object_id).first()
    if agent is None or not access.can_analyse(request.user, agent):
        raise Http404("No such agent in your namespaces.")
    if request.method == "POST" and request.POST.get("apply") == "categories":
        applied = learning.categorise(agent, apply=True, actor=request.user)
        messages.success(request, f"Filed {applied['applied']} memories of {agent.agent_id} under their neighbours' "
                                  "categories.")
        return redirect(request.path)
    insights = learning.insights(agent, actor=request.user)
    failed = list(Memory.objects.filter(access.learning_memories_q(request.user, agent, access.Action.CHANGE))
                  .filter(embedding_status=EmbeddingStatus.FAILED).values_list("pk", flat=True)[:500])
    return TemplateResponse(request, "admin/agents/agent/suggestions.html", {
        **admin_site.each_context(request), "title": f"Learning suggestions for {agent.agent_id}", "agent": agent,
        "opts": Agent._meta, "insights": insights, "suggestions": insights["suggestions"], "failed_ids": failed,
        "near_duplicates": insights["near_duplicates"],
    })
