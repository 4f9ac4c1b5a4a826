"""The Celery application; tasks run in-process (eagerly) when no broker is configured."""
from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tmws_site.settings")

app = Celery("tmws")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(**kwargs) -> None:
    """Each task starts and ends like a request: broken or over-age connections go, healthy ones return to the pool."""
    task = kwargs.get("task")
    if task is not None and task.request.is_eager:  # in-process: the caller's connection and transaction
        return
    from django.db import close_old_connections

    close_old_connections()
