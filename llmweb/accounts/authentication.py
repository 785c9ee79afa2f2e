"""`Authorization: Bearer llmw_…` (or `Token llmw_…`) for scripts."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from llmweb.accounts.models import ApiToken
from llmweb.accounts.selectors import api_token_lookup
from llmweb.core.ratelimit import client_ip, rate_limit_exceeded, rate_limit_hit


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <token>'."
            )
        # Guessing tokens: after LLMWEB_TOKEN_FAILURES_PER_MINUTE failures from one address,
        # answer 429 (with Retry-After) without looking anything up.
        ip_key = f"token-fail:{client_ip(request)}"
        limit = settings.LLMWEB_TOKEN_FAILURES_PER_MINUTE
        if wait := rate_limit_exceeded(ip_key, limit=limit, window=60):
            raise exceptions.Throttled(wait=wait, detail="Too many invalid API tokens.")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            rate_limit_hit(ip_key, limit=limit, window=60)
            raise exceptions.AuthenticationFailed("The API token has invalid characters.") from None
        token = api_token_lookup(secret=secret)
        if token is None or not token.user.is_active:
            rate_limit_hit(ip_key, limit=limit, window=60)
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        now = timezone.now()
        # Write at most once a minute so a busy script does not turn reads into writes.
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        # The audit trail names the token an action came through (accounts/audit.py);
        # this user object is loaded for this request alone.
        token.user.via_token = token
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
