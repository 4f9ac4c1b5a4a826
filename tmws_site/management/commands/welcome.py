"""Tell a new operator how to log in and get a first agent key."""
from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print how to reach the service, log in as an operator and create a first agent."

    def handle(self, *args, **options):
        database = "embedded PostgreSQL in " + str(settings.DATA_DIR) if settings.EMBEDDED_DATABASE else "DATABASE_URL"
        broker = settings.CELERY_BROKER_URL or "none (background jobs run in-process)"
        has_operator = get_user_model().objects.filter(is_superuser=True).exists()
        # `make run` serves on TMWS_BIND.
        base = "http://" + (os.environ.get("TMWS_BIND") or "127.0.0.1:8000")
        lines = [
            f"TMWS 2 is starting on {base}",
            f"  database: {database}",
            f"  broker:   {broker}",
            f"  admin:    {base}/admin/   API docs: {base}/api/docs/",
        ]
        if not has_operator:
            lines.append("  No operator yet. In another terminal:  .venv/bin/python manage.py createsuperuser")
        lines.append("  First agent key:  .venv/bin/python manage.py create_agent my-agent --namespace default")
        self.stdout.write("\n".join(lines))
