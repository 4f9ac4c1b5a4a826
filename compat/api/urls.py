"""URLs of API v1 (persona era), mounted at /api/v1/ by tmws_site.urls."""
from django.urls import re_path

from . import views

PK = r"(?P<pk>[^/]+)"

urlpatterns = [
    re_path(r"^personas/?$", views.PersonaListView.as_view(), name="persona-list"),
    re_path(r"^personas/(?P<name>[^/]+)/stats/?$", views.PersonaStatsView.as_view(), name="persona-stats"),
    re_path(r"^personas/(?P<name>[^/]+)/?$", views.PersonaDetailView.as_view(), name="persona-detail"),
    re_path(r"^memory/?$", views.MemoryListView.as_view(), name="memory-list"),
    re_path(r"^memory/search/?$", views.MemorySearchView.as_view(), name="memory-search"),
    re_path(rf"^memory/{PK}/?$", views.MemoryDetailView.as_view(), name="memory-detail"),
    re_path(r"^tasks/?$", views.TaskListView.as_view(), name="task-list"),
    re_path(rf"^tasks/{PK}/complete/?$", views.TaskCompleteView.as_view(), name="task-complete"),
    re_path(rf"^tasks/{PK}/?$", views.TaskDetailView.as_view(), name="task-detail"),
    re_path(r"^workflows/?$", views.WorkflowListView.as_view(), name="workflow-list"),
    re_path(rf"^workflows/{PK}/execute/?$", views.WorkflowExecuteView.as_view(), name="workflow-execute"),
    re_path(rf"^workflows/{PK}/status/?$", views.WorkflowStatusView.as_view(), name="workflow-status"),
    re_path(rf"^workflows/{PK}/?$", views.WorkflowDetailView.as_view(), name="workflow-detail"),
]
