"""The job system's domain error: a refusal a person can act on (400 naming ``param``)."""

from __future__ import annotations

from llmweb.core.errors import DomainError


class JobError(DomainError):
    """Pre-flight refusals (400) and state conflicts (409, via ``http_status``)."""
