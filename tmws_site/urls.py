from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from core.rest import api_not_found

from .health import healthz, readyz
from .mcp_server import mcp_http_view
from .metrics import MetricsView

api_v2 = [
    path("", include("agents.api.urls")),
    path("", include("namespaces.api.urls")),
    path("", include("memories.api.urls")),
    path("", include("workflows.api.urls")),
    path("", include("audit.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("mcp", mcp_http_view, name="mcp"),
    path("api/v2/", include((api_v2, "v2"))),
    path("api/v1/", include(("compat.api.urls", "v1"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api_docs/redoc.html"), name="api-redoc"),
    # Unknown API paths answer in the one JSON error shape, with DEBUG on or off.
    re_path(r"^api/", api_not_found),
]
