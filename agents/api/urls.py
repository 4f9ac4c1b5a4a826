from core.rest import OptionalSlashRouter

from .views import AgentViewSet

router = OptionalSlashRouter()
router.register("agents", AgentViewSet, basename="agent")
urlpatterns = router.urls
