from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "llmweb.catalog"
    label = "catalog"

    def ready(self) -> None:
        from llmweb.catalog import signals  # noqa: F401 - connects the receivers
