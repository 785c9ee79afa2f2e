from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "llmweb.api"
    label = "api"
