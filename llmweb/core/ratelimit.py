"""Fixed-window counters in the deployment's shared cache (Redis), for rate limits.

Log-in lockout (django-axes), DRF throttles and these counters all keep their state in
the ``shared`` cache alias, so every web process of a deployment counts together; its
keys carry the instance prefix like every other Redis name.
"""

from __future__ import annotations

import time

from django.core.cache import caches

SHARED_CACHE = "shared"


def client_ip(request) -> str:
    """The client's address as the ASGI server saw it (uvicorn applies proxy headers)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def rate_limit_hit(key: str, *, limit: int, window: int) -> int | None:
    """Count one event for ``key``; seconds to wait if it is over ``limit`` per ``window``.

    Returns None while the count is within the limit.
    """
    cache = caches[SHARED_CACHE]
    bucket = int(time.time() // window)
    name = f"rl:{key}:{bucket}"
    cache.add(name, 0, timeout=window + 1)
    try:
        count = cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.set(name, 1, timeout=window + 1)
        count = 1
    if count > limit:
        return max(1, int((bucket + 1) * window - time.time()) + 1)
    return None


def rate_limit_exceeded(key: str, *, limit: int, window: int) -> int | None:
    """Like ``rate_limit_hit`` without counting: seconds to wait, or None."""
    bucket = int(time.time() // window)
    count = caches[SHARED_CACHE].get(f"rl:{key}:{bucket}") or 0
    if count >= limit:
        return max(1, int((bucket + 1) * window - time.time()) + 1)
    return None
