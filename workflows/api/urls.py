from core.rest import OptionalSlashRouter

from .views import TaskViewSet, WorkflowViewSet

router = OptionalSlashRouter()
router.register("tasks", TaskViewSet, basename="task")
router.register("workflows", WorkflowViewSet, basename="workflow")
urlpatterns = router.urls
