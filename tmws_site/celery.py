"""The Celery application; tasks run in-process (eagerly) when no broker is configured."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tmws_site.settings")

app = Celery("tmws")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
