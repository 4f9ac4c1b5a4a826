from core.rest import OptionalSlashRouter

from .views import NamespaceViewSet

router = OptionalSlashRouter()
router.register("namespaces", NamespaceViewSet, basename="namespace")
urlpatterns = router.urls
