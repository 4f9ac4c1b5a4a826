from core.rest import OptionalSlashRouter

from .views import AuditViewSet

router = OptionalSlashRouter()
router.register("audit", AuditViewSet, basename="audit")
urlpatterns = router.urls
