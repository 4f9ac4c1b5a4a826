"""Embedding in the background inside a web process that has no broker (`make run`).

Without Celery, writes used to be embedded inside the request. Web processes without a broker
instead start one embedder thread: a write wakes it after commit, and it drains the pending rows
with the workers' unit of work (`embedding_jobs.embed_pending`: batches, `skip_locked`, attempts), so
creates return at once and several web processes share a backlog without embedding a row twice.
It also wakes every TMWS_EMBEDDING_SWEEP_SECONDS (and once at start, after loading the model) for
rows left pending by a process that stopped mid-batch: nothing is lost, the rows simply wait in the
database.

Only the web entry points (tmws_site.wsgi / asgi) turn it on. Management commands, the MCP stdio
server and the test suite keep embedding synchronously on commit, since they may exit (or assert)
right after a write.
"""
from __future__ import annotations

import logging
import os
import threading

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

_enabled = False
_wake = threading.Event()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def start_if_no_broker() -> None:
    """Turn the embedder on for this process unless a broker (and so a worker) does the embedding."""
    global _enabled
    if settings.CELERY_BROKER_URL:
        return
    _enabled = True
    wake()


def stop() -> None:
    """Turn the embedder off (tests); a drain in progress finishes its batch."""
    global _enabled
    _enabled = False
    _wake.set()


def in_background() -> bool:
    return _enabled and not settings.CELERY_BROKER_URL


def wake() -> None:
    """Ask for a drain; starts the thread in this process if needed (threads do not survive a fork)."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name=f"tmws-embedder-{os.getpid()}", daemon=True)
            _thread.start()
    _wake.set()


def _run() -> None:
    interval = settings.TMWS_EMBEDDING_SWEEP_SECONDS or None
    _load_model()
    while _enabled:
        _wake.wait(timeout=interval)
        _wake.clear()
        if not _enabled:
            break
        close_old_connections()
        try:
            drain()
        except Exception:  # the database is down, say: the rows stay pending for the next wake
            logger.exception("background embedding failed; pending memories wait for the next try")
        finally:
            close_old_connections()


def _load_model() -> None:
    """Load the model as the process starts, so neither the first write nor the first search waits seconds for it."""
    from .embeddings import warm_up

    try:
        warm_up()
    except Exception:  # the drain will say what is wrong with the model, row by row
        logger.exception("the embedding model could not be loaded in the background")


def drain() -> tuple[int, int]:
    """Embed pending memories batch by batch until none is left; returns (embedded, failed).

    Rows whose batch failed are left for the next wake, which tries them again until their
    attempts run out.
    """
    from .embedding_jobs import embed_pending
    from .models import Memory

    embedded, failed = 0, []
    while _enabled:
        done, bad = embed_pending(Memory.objects.exclude(pk__in=failed), limit=settings.TMWS_EMBEDDING_CLAIM_SIZE)
        embedded += len(done)
        failed += bad
        if not done and not bad:
            break
    return embedded, len(failed)
