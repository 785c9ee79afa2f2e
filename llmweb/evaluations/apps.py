from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "llmweb.evaluations"
    label = "evaluations"
