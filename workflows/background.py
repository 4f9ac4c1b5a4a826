"""Workflow work in a web process that has no broker (`make run`): a schedule and a few threads.

Without Celery, starting a run used to execute it inside the request. Web processes without a broker
instead keep a schedule of named work (the Celery tasks of workflows.tasks, sent by
workflows.dispatch) served by TMWS_WORKFLOW_THREADS threads: a request answers at once, steps whose
dependencies are met run side by side, and a wait or a retry's backoff is an entry due later, not a
sleeping thread. The sweep (workflows.tasks.sweep_workflow_runs) runs every
TMWS_WORKFLOW_SWEEP_SECONDS and once at start, so runs left by a process that stopped go on: their
state is in the database, the schedule only says when to look.

Only the web entry points (tmws_site.wsgi / asgi) turn it on; elsewhere without a broker the work
runs in the thread that sends it.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time

from celery import current_app
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

SWEEP = "workflows.tasks.sweep_workflow_runs"

_enabled = False
_schedule: list[tuple[float, int, str, tuple]] = []
_order = itertools.count()
_condition = threading.Condition()
_threads: list[threading.Thread] = []


def start_if_no_broker() -> None:
    """Serve workflow work in this process unless a broker (and so a worker) does."""
    global _enabled
    if settings.CELERY_BROKER_URL:
        return
    with _condition:
        _enabled = True
        if not any(name == SWEEP for _, _, name, _ in _schedule):
            _push(SWEEP, (), 0.0)
        _start_threads()
        _condition.notify_all()


def stop() -> None:
    """Stop serving (tests); work in progress finishes, the schedule is dropped (the sweep finds it again)."""
    global _enabled
    with _condition:
        _enabled = False
        _schedule.clear()
        _condition.notify_all()
    for thread in list(_threads):
        thread.join(timeout=30)
    _threads.clear()


def running() -> bool:
    return _enabled and not settings.CELERY_BROKER_URL


def submit(name: str, args, countdown: float = 0.0) -> None:
    with _condition:
        _push(name, tuple(args), countdown)
        _start_threads()
        _condition.notify()


def _push(name: str, args: tuple, countdown: float) -> None:
    heapq.heappush(_schedule, (time.monotonic() + countdown, next(_order), name, args))


def _start_threads() -> None:
    """Start the threads this process lacks (threads do not survive a fork)."""
    _threads[:] = [thread for thread in _threads if thread.is_alive()]
    for number in range(len(_threads), max(settings.TMWS_WORKFLOW_THREADS, 1)):
        thread = threading.Thread(target=_serve, name=f"tmws-workflows-{os.getpid()}-{number}", daemon=True)
        _threads.append(thread)
        thread.start()


def _next_item():
    """The next due item, waiting for it; None once stopped."""
    with _condition:
        while _enabled:
            if _schedule and _schedule[0][0] <= time.monotonic():
                return heapq.heappop(_schedule)
            timeout = _schedule[0][0] - time.monotonic() if _schedule else None
            _condition.wait(timeout=timeout)
        return None


def run_task(name: str, args) -> None:
    """Run the registered Celery task `name` here and now."""
    if name not in current_app.tasks:
        # A web process imports the apps' task modules only when something needs them (a worker does at start).
        current_app.loader.import_default_modules()
    current_app.tasks[name](*args)


def _serve() -> None:
    while True:
        item = _next_item()
        if item is None:
            return
        _, _, name, args = item
        close_old_connections()
        try:
            run_task(name, args)
        except Exception:  # the database is down, say: the run's wake time brings the sweep back to it
            logger.exception("workflow work %s%s failed", name, args)
        finally:
            close_old_connections()
            if name == SWEEP and _enabled and settings.TMWS_WORKFLOW_SWEEP_SECONDS > 0:
                submit(SWEEP, (), settings.TMWS_WORKFLOW_SWEEP_SECONDS)
