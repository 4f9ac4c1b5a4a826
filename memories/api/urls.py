from core.rest import OptionalSlashRouter

from .views import MemoryViewSet

router = OptionalSlashRouter()
router.register("memories", MemoryViewSet, basename="memory")
urlpatterns = router.urls
