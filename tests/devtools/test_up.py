"""The run command (``./dev.sh run`` = ``python -m llmweb.devtools.up``) from the outside.

It is started the way a person starts it, in a fresh folder with its own var/ and Redis:
it must answer /healthz, print admin credentials that log in, and leave no process behind
after Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import httpx
import psutil
import pytest

from llmweb.devtools.redis import free_port, start_embedded
from tests.support import ROOT, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
CREDENTIALS = re.compile(r"admin user: (\S+)\s+password: (\S+)")


def _clean_env(tmp_path, port: int, redis_url: str) -> dict[str, str]:
    """What a person's shell would hold: nothing of this test run, var/ under tmp_path."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        LLMWEB_VAR_DIR=str(tmp_path / "var"),
        LLMWEB_STORAGE_DIR=str(tmp_path / "var" / "storage"),
        PORT=str(port),
        HOST="127.0.0.1",
        REDIS_URL=redis_url,
    )
    return env


def _login(base: str, user: str, password: str) -> bool:
    with httpx.Client(base_url=base, timeout=30) as http:
        http.get("/accounts/login/")
        r = http.post(
            "/accounts/login/",
            data={
                "username": user,
                "password": password,
                "csrfmiddlewaretoken": http.cookies["csrftoken"],
            },
            headers={"Referer": base + "/accounts/login/"},
        )
        return r.status_code == 302 and http.get("/api/v1/me/").json()["username"] == user


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_run_command_serves_health_prints_working_credentials_and_stops_on_ctrl_c(tmp_path):
    redis = start_embedded()  # its own Redis: the workers it starts must take no one's tasks
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmweb.devtools.up"],
        cwd=tmp_path,
        env=_clean_env(tmp_path, port, redis.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
        # A terminal leaves SIGINT at its default; a test runner started in the background
        # may have it ignored, and children inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    pids: list[int] = []
    try:

        def banner():
            assert proc.poll() is None, "".join(lines)[-3000:]
            return next((m for line in lines if (m := CREDENTIALS.search(line))), None)

        user, password = wait_for(banner, timeout=240, what="the run command's banner").groups()

        def healthy():
            r = httpx.get(base + "/healthz", timeout=10)
            body = r.json()
            return body if r.status_code == 200 and body["workers"] >= 3 else None

        health = wait_for(healthy, timeout=180, interval=1, what="/healthz with three workers")
        assert health["database"] == "ok" and health["redis"] == "ok"
        assert {"gpu", "inference", "default"} <= set(health["queues"])
        # The inference worker is one process with threads (one model cache, batched
        # decoding); Celery's banner names each worker's pool.
        assert any("(thread)" in line for line in lines), "".join(lines)[-3000:]
        assert _login(base, user, password), "the printed admin credentials must log in"
        assert not _login(base, user, password + "x")

        pids = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(pids) >= 5  # itself, the web server and three workers (and their children)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        assert proc.wait(timeout=90) == 0, "".join(lines)[-3000:]
        wait_for(lambda: not _alive(pids), timeout=60, what="every started process to exit")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for pid in _alive(pids):
            psutil.Process(pid).kill()
        redis.stop()
