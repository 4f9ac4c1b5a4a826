from django.apps import AppConfig


class CompatConfig(AppConfig):
    name = "compat"
    verbose_name = "Persona-era compatibility"

    def ready(self):
        from core import extensions

        from . import adapter, sunset  # noqa: F401  (sunset registers the TMWS_V1_SUNSET check)

        extensions.provide("persona_agent", adapter.agent_for_persona)
        extensions.provide("importance_to_learning_weight", adapter.importance_to_learning_weight)
