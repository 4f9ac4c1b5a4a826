"""REST settings plumbing: pagination and the one error shape `{"error": {"code", "message", "fields"?}}`."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import set_rollback

from . import validation
from .errors import ServiceError, error_body


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_number(self, request, paginator):
        # A page that is not a whole number from 1 is bad input (400); a page past the last one stays 404.
        raw = request.query_params.get(self.page_query_param)
        if raw in self.last_page_strings:
            return super().get_page_number(request, paginator)
        return validation.query_integer(raw, self.page_query_param, 1, validation.BIGINT_MAX, default=1)

    def get_page_size(self, request):
        # `limit` is accepted as an alias of page_size for clients that use it.
        if "limit" in request.query_params and self.page_size_query_param not in request.query_params:
            try:
                return max(1, min(int(request.query_params["limit"]), self.max_page_size))
            except ValueError:
                raise exceptions.ValidationError({"limit": ["limit must be an integer."]}) from None
        return super().get_page_size(request)


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            fields.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            fields[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                fields.update(_flatten(item, f"{prefix}[{index}]"))
    else:
        fields[prefix or "non_field_errors"] = [str(detail)]
    return fields


def error_response(code: str, message: str, http_status: int, fields: dict | None = None, headers=None) -> Response:
    return Response(error_body(code, message, fields), status=http_status, headers=headers)


def exception_handler(exc, context):
    """Turn every refusal into the one error shape, rolling back whatever the request wrote."""
    response = _render_exception(exc)
    if response is not None:
        set_rollback()
    return response


def _render_exception(exc):
    if isinstance(exc, ServiceError):
        return error_response(exc.code, exc.message, exc.status, exc.as_dict()["error"].get("fields"), exc.headers)
    if isinstance(exc, RequestDataTooBig):
        return error_response("too_large", "The request body is too large.", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail) or {"non_field_errors": ["Invalid input."]}
        first_field, first_messages = next(iter(fields.items()))
        message = f"{first_field}: {first_messages[0]}" if first_field != "non_field_errors" else first_messages[0]
        return error_response("invalid", message, status.HTTP_400_BAD_REQUEST, fields, headers)
    if isinstance(exc, exceptions.ParseError):
        return error_response("malformed", f"Malformed request body: {exc.detail}", exc.status_code, headers=headers)
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
    return error_response(code, str(exc.detail), exc.status_code, headers=headers)




class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with or without a trailing slash (`/api/v2/memories` and `/api/v2/memories/`)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


@csrf_exempt  # it changes nothing: an unsafe method on an unknown path is a 404, not a CSRF failure
def api_not_found(request, exception=None):
    """JSON 404 for paths under /api/ that match no route, whatever the method."""
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def csrf_failure(request, reason=""):
    """A refused CSRF check: JSON in the one error shape under /api/, Django's page elsewhere (the admin)."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("permission_denied", "CSRF check failed: send the X-CSRFToken header with a "
                                       "session, or use an API key."), status=403)
    return django_csrf_failure(request, reason=reason)
