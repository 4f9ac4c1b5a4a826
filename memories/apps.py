from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class MemoriesConfig(AppConfig):
    name = "memories"

    def ready(self):
        from core import extensions

        from .purge import purge_agent

        checks.register(embedding_model_check)
        extensions.provide("purge_agent", purge_agent)


def embedding_model_check(app_configs=None, **kwargs) -> list:
    """TMWS_EMBEDDING_MODEL names a known model or a folder (checked without loading the model)."""
    from .embeddings import configured_model

    try:
        configured_model()
    except Exception as exc:
        return [checks.Error(str(exc), id="memories.E001")]
    return []
