"""API rate limits: per token (or session user, or address), kept in the shared cache."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

from llmweb.accounts.models import ApiToken
from llmweb.core.ratelimit import SHARED_CACHE


class TokenRateThrottle(SimpleRateThrottle):
    """``LLMWEB_API_RATE`` requests per token; a script and a browser of one user count apart.

    The key is part of the token's digest, not its id: ids are reused after a test flush
    and say nothing across deployments.
    """

    scope = "token"

    def __init__(self) -> None:
        self.cache = caches[SHARED_CACHE]
        super().__init__()

    def get_rate(self) -> str:
        # Read on each request, so settings overrides (tests) apply.
        return settings.LLMWEB_API_RATE

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, ApiToken):
            ident = f"token:{request.auth.digest[:24]}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"throttle:{ident}"
