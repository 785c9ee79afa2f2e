"""The run command supervises: a killed worker comes back, the web server stays up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings

from llmweb.devtools.redis import free_port
from tests.support import ROOT, wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LLMWEB_STORAGE_DIR")}
    env.update(
        LLMWEB_VAR_DIR=str(tmp_path / "var"),
        LLMWEB_INSTANCE=f"{settings.LLMWEB_INSTANCE}-up",
        REDIS_URL=settings.REDIS_URL,
        PORT=str(port),
        LLMWEB_PRELOAD="0",
        LLMWEB_ADMIN_USER="admin",
        LLMWEB_ADMIN_PASSWORD="a long admin password 1",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "up.log"
    url = f"http://127.0.0.1:{port}/healthz"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmweb.devtools.up"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    text = log_path.read_text

    def pids(name: str) -> list[int]:
        return [int(p) for p in re.findall(rf"started {name} \(pid (\d+)\)", text())]

    def workers() -> int:
        if proc.poll() is not None:
            raise RuntimeError(text()[-3000:])
        r = httpx.get(url, timeout=5)
        return r.json()["workers"] if r.status_code == 200 else 0

    try:
        wait_for(lambda: workers() == 2, timeout=240, interval=1, what="two workers")
        out = text()
        assert f"instance:   {env['LLMWEB_INSTANCE']}" in out and settings.REDIS_URL in out
        (gpu,) = pids("gpu worker")
        (web,) = pids("web server")
        os.kill(gpu, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: len(pids("gpu worker")) == 2, timeout=60, what="the restart")
        assert re.search(rf"gpu worker \(pid {gpu}\) exited with code -9", text())
        # The web server never went away.
        assert _alive(web) and httpx.get(url, timeout=5).status_code == 200
        wait_for(lambda: workers() == 2, timeout=120, interval=1, what="the worker back")
        print(f"worker back in /healthz {time.monotonic() - killed_at:.1f} s after SIGKILL")
        children = [*pids("gpu worker"), *pids("default worker"), web]

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        stopping = time.monotonic()
        assert proc.wait(timeout=90) == 0
        print(f"Ctrl-C stopped everything in {time.monotonic() - stopping:.1f} s")
        assert not [p for p in children if _alive(p)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in [*pids("gpu worker"), *pids("default worker"), *pids("web server")]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
