from django.urls import re_path

from core.rest import OptionalSlashRouter

from .views import AgentPatternsViewSet, MemoryViewSet

router = OptionalSlashRouter()
router.register("memories", MemoryViewSet, basename="memory")
urlpatterns = [
    # An agent's learned patterns live under the agent, but are the memories app's business (agents sit below).
    re_path(r"^agents/(?P<agent_id>[^/]+)/patterns/?$", AgentPatternsViewSet.as_view({"get": "retrieve"}),
            name="agent-patterns"),
    *router.urls,
]
