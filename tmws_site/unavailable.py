"""A database that is down or restarting answers 503 in the error shape, never a 500 page."""
from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from core.errors import error_body

logger = logging.getLogger(__name__)

# Connection failures, a pool that found no connection in time, and a server shutting down all
# arrive as one of these; the next request gets a fresh connection from the pool.
DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def database_unavailable_response() -> JsonResponse:
    response = JsonResponse(
        error_body("database_unavailable", "The database is unavailable; try again shortly."),
        status=503,
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Turn a database connection failure raised by a view (or by its request transaction) into a 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        return database_unavailable_response()
