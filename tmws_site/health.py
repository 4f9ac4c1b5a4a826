"""Liveness and readiness probes for load balancers and orchestrators."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection, transaction
from django.http import JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


# Probes stay outside ATOMIC_REQUESTS: liveness must not need the database, and readiness must
# answer 503 (not fail opening a transaction) when the database is down.
@transaction.non_atomic_requests
@require_GET
def healthz(request):
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        return (True, f"pgvector {row[0]}") if row else (False, "pgvector extension missing: run migrate")
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _broker_ok() -> tuple[bool, str]:
    if not settings.CELERY_BROKER_URL:
        return True, "not configured: tasks run in-process"
    try:
        from tmws_site.celery import app

        # Name the URL from settings: the app's own conf is read once and may predate an override.
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True, "reachable"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _shows_details(request) -> bool:
    """Why a component fails (exception text names hosts and drivers) is for operators; others read "unavailable"."""
    import access

    try:
        return access.can_read_probe_details(request.user)
    except Exception:  # the session store is the database, which may be what is down
        return False


@transaction.non_atomic_requests
@require_GET
def readyz(request):
    """The database (with pgvector) and, when configured, the Celery broker are reachable."""
    db_ok, db_detail = _database_ok()
    broker_ok, broker_detail = _broker_ok()
    ready = db_ok and broker_ok
    if not ready:
        logger.warning("Not ready: database %s; broker %s", db_detail, broker_detail)
    if not ready and not _shows_details(request):
        db_detail = db_detail if db_ok else "unavailable"
        broker_detail = broker_detail if broker_ok else "unavailable"
    body = {"status": "ready" if ready else "unavailable", "database": db_detail, "broker": broker_detail}
    if _shows_details(request):
        body["embedding"] = _embedding_detail()
    return JsonResponse(body, status=200 if ready else 503)


def _embedding_detail() -> dict:
    """Which backend and precision this process embeds with, and why (operators: a machine may run float32)."""
    from memories.embeddings import loaded_status

    return loaded_status() or {"loaded": False, "precision_setting": settings.TMWS_EMBEDDING_PRECISION}
