"""Where the workflow engine's work goes: to Celery workers, to the web process's workflow threads, or inline.

Work is named by its Celery task (declared in workflows.tasks under these names) and sent once the
sending transaction commits, so a worker never looks for rows it cannot see yet:

- with a broker, as a Celery message (`countdown` schedules it: nothing sleeps);
- in a web process without a broker (`make run`), to its workflow threads (workflows.background),
  which keep a schedule of their own, so the request answers at once;
- otherwise (the test suite, management commands), in the calling thread: queued work runs one item
  after another, in the order it falls due, without recursion.

A message may be lost or delivered twice: the engine's claims make a second delivery a no-op, and a
run's wake time (WorkflowRun.wake_at) lets the sweep send what was lost.
"""
from __future__ import annotations

import functools
import heapq
import itertools
import logging
import threading
import time

from celery import current_app
from django.db import transaction

from . import background

logger = logging.getLogger(__name__)

ADVANCE_RUN = "workflows.tasks.advance_run"
EXECUTE_STEP = "workflows.tasks.execute_step"
RESUME_STEP = "workflows.tasks.resume_step"
SWEEP_RUNS = "workflows.tasks.sweep_workflow_runs"

_inline = threading.local()
_order = itertools.count()


def send(name: str, *args: str, countdown: float = 0.0) -> None:
    """Have the task `name` run with `args` (strings) in `countdown` seconds (0: now)."""
    countdown = max(float(countdown or 0), 0.0)
    if not current_app.conf.task_always_eager:
        current_app.send_task(name, args=list(args), countdown=countdown or None)
    elif background.running():
        background.submit(name, args, countdown)
    else:
        _run_inline(name, args, countdown)


def send_on_commit(name: str, *args: str, countdown: float = 0.0) -> None:
    """`send` once the current transaction commits; a failure to send is logged, the sweep sends it again."""
    transaction.on_commit(functools.partial(send, name, *args, countdown=countdown), robust=True)


def _run_inline(name: str, args, countdown: float) -> None:
    item = (time.monotonic() + countdown, next(_order), name, tuple(args))
    queue = getattr(_inline, "queue", None)
    if queue is not None:  # already running work in this thread: it runs after the current item
        heapq.heappush(queue, item)
        return
    _inline.queue = queue = [item]
    try:
        while queue:
            due, _, task_name, task_args = heapq.heappop(queue)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # no scheduler here (tests, commands): the caller waits for due work
            try:
                background.run_task(task_name, task_args)
            except Exception:
                logger.exception("workflow work %s%s failed", task_name, task_args)
    finally:
        _inline.queue = None
