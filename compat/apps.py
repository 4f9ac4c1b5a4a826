from django.apps import AppConfig


class CompatConfig(AppConfig):
    name = "compat"
    verbose_name = "Persona-era compatibility"

    def ready(self):
        from . import sunset  # noqa: F401  (registers the TMWS_V1_SUNSET check)
