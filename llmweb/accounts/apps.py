from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "llmweb.accounts"
    label = "accounts"
