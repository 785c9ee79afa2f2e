"""The run command: Redis (embedded if needed) + migrations + admin + web + workers + beat.

Everything runs in the foreground of one terminal; Ctrl-C stops every process it started.
It supervises: a worker that dies (the OOM killer is routine in ML work) is logged and
started again with back-off, while the web server and the other workers keep running.
Three workers: ``gpu`` (training, one slot), ``inference`` (threads pool, the playground)
and ``default`` (uploads, housekeeping, beat).
The database is the truth for the work itself: the reapers requeue what the dead worker
held. Only the web server's own exit stops everything, because then nobody can reach
the app and the reason (a taken port, say) needs a person.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from llmweb.devtools.redis import ensure_redis
from llmweb.devtools.server import asgi_command
from llmweb.devtools.workers import worker_command

ROOT = Path(__file__).resolve().parents[2]


def _admin_credentials(var_dir: Path) -> tuple[str, str]:
    user = os.environ.get("LLMWEB_ADMIN_USER")
    password = os.environ.get("LLMWEB_ADMIN_PASSWORD")
    if user and password:
        return user, password
    # Generated once, kept (0600) under var/ so a restart prints the same credentials.
    path = var_dir / "admin_credentials"
    if path.exists():
        saved_user, saved_password = path.read_text().split("\n", 1)
        return user or saved_user, saved_password.strip()
    user = user or "admin"
    password = secrets.token_urlsafe(12)
    path.write_text(f"{user}\n{password}\n")
    path.chmod(0o600)
    return user, password


# Restart delays grow 1, 2, 4 ... up to this; a process that ran this long resets them.
MAX_BACKOFF_SECONDS = 60.0
HEALTHY_AFTER_SECONDS = 60.0
# Threads of the inference worker: requests decoding at once (they batch per model).
INFERENCE_THREADS = 4


def log(message: str) -> None:
    print(f"[llmweb] {message}", flush=True)


@dataclass
class Supervised:
    """One child process, in its own process group so a dead worker's pool goes with it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    restart: bool = True
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    failures: int = field(default=0, repr=False)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, start_new_session=True)
        self.started_at = time.monotonic()
        self.restart_at = None
        log(f"started {self.name} (pid {self.proc.pid})")

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def check(self, now: float) -> bool:
        """Restart a dead process when its back-off has passed; False: stop everything."""
        if self.proc is None:
            return True
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                self.start()
            return True
        code = self.proc.poll()
        if code is None:
            return True
        # A killed worker's pool children would keep running orphaned; end the group.
        self._signal_group(signal.SIGKILL)
        if not self.restart:
            log(f"{self.name} exited with code {code}; stopping the rest.")
            return False
        ran = now - self.started_at
        self.failures = 1 if ran >= HEALTHY_AFTER_SECONDS else self.failures + 1
        delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (self.failures - 1))
        log(
            f"{self.name} (pid {self.proc.pid}) exited with code {code} after {ran:.0f} s; "
            f"restarting in {delay:.0f} s (restart #{self.restarts + 1}). Its work is "
            "requeued by the reaper."
        )
        self.restart_at = now + delay
        return True

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)

    def wait_or_kill(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)


def supervise(children: list[Supervised], *, interval: float = 0.5) -> int:
    """Keep the children running until the web server exits (1) or we are interrupted."""
    for child in children:
        child.start()
    while True:
        now = time.monotonic()
        for child in children:
            if not child.check(now):
                return 1
        time.sleep(interval)


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmweb.settings")
    server = ensure_redis()
    os.environ["REDIS_URL"] = server.url
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    children: list[Supervised] = []

    def stop() -> None:
        # A second Ctrl-C must not leave children behind half-way through.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in children:
            child.terminate()
        # One deadline for all: a worker finishing its warm shutdown gets 15 s in total.
        deadline = time.monotonic() + 15
        for child in children:
            child.wait_or_kill(timeout=max(0.1, deadline - time.monotonic()))
        server.stop()

    # SIGTERM and Ctrl-C both leave through the finally below.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        user, password = _admin_credentials(Path(settings.VAR_DIR))
        call_command("llmweb_bootstrap", admin_user=user, admin_password=password)
        env = {**os.environ}
        instance = settings.LLMWEB_INSTANCE
        children.append(Supervised("web server", asgi_command(host, port), env, restart=False))
        # Training gets its own single-slot worker so one job owns the device. Inference gets
        # a threads-pool worker: one process, so each model is loaded once and concurrent
        # requests for it share one batched decode (docs/ARCHITECTURE.md "Serving").
        # Housekeeping (uploads, validation, the reaper via beat) keeps prefork processes.
        children.append(
            Supervised(
                "gpu worker",
                worker_command(role="gpu", queues="gpu", instance=instance, concurrency=1),
                env,
            )
        )
        children.append(
            Supervised(
                "inference worker",
                worker_command(
                    role="inference",
                    queues=settings.LLMWEB_INFERENCE_QUEUE,
                    instance=instance,
                    concurrency=INFERENCE_THREADS,
                    pool="threads",
                    prefetch=False,  # waiting requests stay on the queue: live positions
                ),
                env,
            )
        )
        children.append(
            Supervised(
                "default worker",
                worker_command(
                    role="default",
                    queues="default",
                    instance=instance,
                    concurrency=2,
                    beat_schedule=Path(settings.VAR_DIR) / "celerybeat-schedule",
                ),
                env,
            )
        )
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host  # noqa: S104
        banner = [
            "",
            "=" * 60,
            f"  llmweb is running at http://{shown}:{port}/",
            f"  admin user: {user}   password: {password}",
            f"  database:   {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}",
            f"  redis:      {server.url}{' (embedded)' if server.embedded else ''}",
            f"  instance:   {instance}   (keys {settings.LLMWEB_REDIS_PREFIX}*, "
            f"channels {settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}*)",
            "  health:     /healthz    API docs: /api/docs/    Ctrl-C stops everything",
            "=" * 60,
            "",
        ]
        print("\n".join(banner), flush=True)
        return supervise(children)
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
