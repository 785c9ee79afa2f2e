"""The run command: Redis (embedded if needed) + migrations + admin + web + workers + beat.

Everything runs in the foreground of one terminal; Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from llmweb.devtools.redis import ensure_redis
from llmweb.devtools.server import asgi_command

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


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmweb.settings")
    server = ensure_redis()
    os.environ["REDIS_URL"] = server.url
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    procs: list[subprocess.Popen] = []

    def stop(*_args) -> None:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        user, password = _admin_credentials(Path(settings.VAR_DIR))
        call_command("llmweb_bootstrap", admin_user=user, admin_password=password)
        py = sys.executable
        env = {**os.environ}
        procs.append(
            subprocess.Popen(
                asgi_command(host, port),
                cwd=ROOT,
                env=env,
            )
        )
        # Training gets its own single-slot worker so one job owns the device; inference and
        # housekeeping (uploads, validation, the reaper via beat) share another.
        procs.append(
            subprocess.Popen(
                [
                    py,
                    "-m",
                    "celery",
                    "-A",
                    "llmweb",
                    "worker",
                    "-Q",
                    "gpu",
                    "-c",
                    "1",
                    "-n",
                    "gpu@%h",
                    "--loglevel",
                    "INFO",
                ],
                cwd=ROOT,
                env=env,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    py,
                    "-m",
                    "celery",
                    "-A",
                    "llmweb",
                    "worker",
                    "-Q",
                    "inference,default",
                    "-c",
                    "2",
                    "-n",
                    "default@%h",
                    "-B",
                    "-s",
                    str(Path(settings.VAR_DIR) / "celerybeat-schedule"),
                    "--loglevel",
                    "INFO",
                ],
                cwd=ROOT,
                env=env,
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
            "  health:     /healthz    API docs: /api/docs/    Ctrl-C stops everything",
            "=" * 60,
            "",
        ]
        print("\n".join(banner), flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("[llmweb] a process exited; stopping the rest.", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
