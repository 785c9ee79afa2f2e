"""Domain errors: refusals a person can act on.

Services raise them; ``llmweb.api.errors`` turns every one into a JSON response in one
place (``detail``, ``code``, ``param``), and pages show ``message`` beside the field.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a machine-readable ``code``, the input at fault and an HTTP status."""

    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        param: str | None = None,
        http_status: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param
        if http_status is not None:
            self.http_status = http_status
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param}


class Conflict(DomainError):
    """The request is valid but the record's state forbids it now (HTTP 409)."""

    http_status = 409
