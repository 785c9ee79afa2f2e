"""The one way this project starts its ASGI server (run command, tests, benchmarks).

uvicorn rather than daphne: daphne reads a whole request body into memory before the app
sees it (a 200 MB upload cost the web process ~600 MB), while uvicorn applies flow
control and Django spools the body to disk past FILE_UPLOAD_MAX_MEMORY_SIZE.
"""

from __future__ import annotations

import sys


def asgi_command(host: str, port: int, *, access_log: bool = True) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "llmweb.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--ws",
        "websockets-sansio",
        "--lifespan",
        "off",
        "--timeout-graceful-shutdown",
        "5",
        # Longer than clients keep idle connections (httpx, requests: 5 s; browsers more):
        # with uvicorn's 5 s default the server closed connections just as clients reused
        # them, and bench/load.py's 100 clients saw "disconnected without a response".
        "--timeout-keep-alive",
        "65",
    ]
    if not access_log:
        cmd.append("--no-access-log")
    return cmd
