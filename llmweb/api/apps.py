from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "llmweb.api"
    label = "api"

    def ready(self) -> None:
        # Registers the OpenAPI extension for API tokens (drf-spectacular finds subclasses).
        from llmweb.api import schema  # noqa: F401
