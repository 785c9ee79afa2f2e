"""Run a command with REDIS_URL pointing at a live Redis (embedded when none answers).

Used by the README's test command: ``python -m llmweb.devtools.withredis pytest ...``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from llmweb.devtools.redis import ensure_redis


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m llmweb.devtools.withredis COMMAND [ARGS...]", file=sys.stderr)
        return 2
    server = ensure_redis()
    if server.embedded:
        print(f"[llmweb] no Redis answered; started an embedded one at {server.url}", flush=True)
    env = {**os.environ, "REDIS_URL": server.url}
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
