"""OpenAPI pieces drf-spectacular cannot infer: how API tokens authenticate."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer llmw_…`` in the schema, so clients (and schemathesis) know it."""

    target_class = "llmweb.accounts.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (Settings → API tokens), `llmw_…`.",
        }
