"""Real processes for tests: a Celery worker and the ASGI server on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from django.conf import settings

from llmweb.devtools.redis import free_port
from llmweb.devtools.server import asgi_command

ROOT = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    """The URL of the test database pytest-django created, for child processes."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "LLMWEB_STORAGE_DIR": str(settings.STORAGE_DIR),
        "DJANGO_SETTINGS_MODULE": "llmweb.settings",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def wait_for(
    check: Callable[[], object],
    *,
    timeout: float = 30,
    interval: float = 0.1,
    what: str = "condition",
):
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last error
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


class Worker:
    """A `celery worker` subprocess. ``kill()`` sends SIGKILL to the whole process group."""

    def __init__(
        self,
        queues: str = "gpu,inference,default",
        concurrency: int = 1,
        log: Path | None = None,
        beat: bool = False,
        env: dict[str, str] | None = None,
        pool: str | None = None,
    ):
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.log = log or Path(settings.VAR_DIR) / f"worker-{self.name.split('@')[0]}.log"
        self._fh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "llmweb",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            self.name,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ]
        if beat:
            args += ["-B", "-s", str(self.log.with_suffix(".beat"))]
        if pool:
            args += ["-P", pool]
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=child_env(**(env or {})),
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> Worker:
        from llmweb.celery import app

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            return (app.control.inspect(destination=[self.name], timeout=0.5).ping() or {}).get(
                self.name
            )

        wait_for(ready, timeout=timeout, interval=0.3, what=f"worker {self.name}")
        return self

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class LiveServer:
    """The ASGI server (HTTP + websockets) the run command uses, on a free port."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(settings.VAR_DIR) / f"server-{self.port}.log"
        self._fh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            asgi_command("127.0.0.1", self.port),
            cwd=ROOT,
            env=child_env(**(env or {})),
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._up, timeout=60, what="the ASGI server")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(self.log.read_text()[-2000:])
        try:
            return httpx.get(self.url + "/accounts/login/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._fh.close()
