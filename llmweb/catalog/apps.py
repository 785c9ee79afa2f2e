from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "llmweb.catalog"
    label = "catalog"
