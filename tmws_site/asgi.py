"""ASGI entry point: without a broker the process embeds new memories and runs workflows in background threads."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tmws_site.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
application = get_asgi_application()

from memories.background import start_if_no_broker  # noqa: E402  (needs the settings above)
from workflows import background as workflow_background  # noqa: E402

start_if_no_broker()
workflow_background.start_if_no_broker()
