"""One deployment, one namespace on a shared Redis.

Two clones of the app on one machine both found the Redis on localhost:6379, and each
worker consumed the other's tasks (it answered ``skipped``: the id was not in its
database). So every Redis name a deployment uses carries its instance name: broker keys
and result keys (``global_keyprefix``), the channel-layer prefix, and the Celery worker
node names (which also scopes ``inspect``/``ping`` replies, because kombu prefixes the
control channels too).

The name is ``LLMWEB_INSTANCE`` when set; otherwise it is derived from the var
directory (``<folder>-<hash of its absolute path>``), so two checkouts differ and one
checkout's web, workers and beat agree without configuration. Under pytest each session
is its own instance (``test<pid>``), so a test run never meets a dev server's work.

No Django import: the settings module and the worker command builder both use this.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")


def instance_name(var_dir: Path, *, env: Mapping[str, str] | None = None) -> str:
    """The deployment's instance name: ``LLMWEB_INSTANCE``, else derived from ``var_dir``.

    Raises:
        ValueError: an explicit name with characters that do not belong in a Redis key
            or a Celery node name (only letters, digits, ``-`` and ``_``; at most 48).
    """
    env = os.environ if env is None else env
    explicit = (env.get("LLMWEB_INSTANCE") or "").strip()
    if explicit:
        if not _VALID.match(explicit):
            raise ValueError(
                f"LLMWEB_INSTANCE={explicit!r}: use letters, digits, '-' and '_' (at most 48)."
            )
        return explicit
    resolved = Path(var_dir).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    # The parent folder (the checkout) reads better than "var" in logs and node names.
    folder = resolved.parent.name if resolved.name == "var" else resolved.name
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", folder).strip("-_")[:24] or "llmweb"
    return f"{slug}-{digest}"


def redis_key_prefix(instance: str) -> str:
    """The prefix of every broker and result key of this instance."""
    return f"llmweb:{instance}:"


def channel_layer_prefix(instance: str) -> str:
    """channels_redis' ``prefix`` (it adds its own ``:`` separators)."""
    return f"asgi:{instance}"


def worker_node_name(role: str, instance: str, host: str = "%h") -> str:
    """A Celery node name that says which deployment it serves: ``gpu.<instance>@host``."""
    return f"{role}.{instance}@{host}"
