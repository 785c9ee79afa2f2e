from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "llmweb.web"
    label = "web"
