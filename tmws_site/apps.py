from django.apps import AppConfig


class TmwsSiteConfig(AppConfig):
    name = "tmws_site"
    verbose_name = "TMWS site"
