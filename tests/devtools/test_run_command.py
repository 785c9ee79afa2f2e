"""The run command supervises: a killed worker comes back, the web server stays up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class RunCommand:
    """``python -m llmweb.devtools.up`` on its own var directory, port and instance."""

    proc: subprocess.Popen
    log: Path
    env: dict[str, str]
    url: str

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self, name: str) -> list[int]:
        return [int(p) for p in re.findall(rf"started {name} \(pid (\d+)\)", self.text())]

    def workers(self) -> int:
        if self.proc.poll() is not None:
            raise RuntimeError(self.text()[-3000:])
        r = httpx.get(self.url + "/healthz", timeout=5)
        return r.json()["workers"] if r.status_code == 200 else 0


@pytest.fixture
def run_command(tmp_path) -> Iterator[RunCommand]:
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
        # A dead worker's job is requeued within seconds (production: 30 s / 15 s).
        LLMWEB_HEARTBEAT_STALE_SECONDS="6",
        LLMWEB_REAPER_INTERVAL_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "up.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmweb.devtools.up"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = RunCommand(proc, log_path, env, f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: run.workers() == 3, timeout=240, interval=1, what="three workers")
        yield run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        names = ("gpu worker", "inference worker", "default worker", "web server")
        for pid in [p for name in names for p in run.pids(name)]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_ctrl_c_stops_everything(run_command):
    run = run_command
    out = run.text()
    assert f"instance:   {run.env['LLMWEB_INSTANCE']}" in out and settings.REDIS_URL in out
    (gpu,) = run.pids("gpu worker")
    (web,) = run.pids("web server")
    os.kill(gpu, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: len(run.pids("gpu worker")) == 2, timeout=60, what="the restart")
    assert re.search(rf"gpu worker \(pid {gpu}\) exited with code -9", run.text())
    # The web server never went away.
    assert _alive(web) and httpx.get(run.url + "/healthz", timeout=5).status_code == 200
    wait_for(lambda: run.workers() == 3, timeout=120, interval=1, what="the worker back")
    print(f"worker back in /healthz {time.monotonic() - killed_at:.1f} s after SIGKILL")
    children = [*run.pids("gpu worker"), *run.pids("inference worker"), *run.pids("default worker")]
    children.append(web)

    run.proc.send_signal(signal.SIGINT)  # Ctrl-C
    stopping = time.monotonic()
    assert run.proc.wait(timeout=90) == 0
    print(f"Ctrl-C stopped everything in {time.monotonic() - stopping:.1f} s")
    assert not [p for p in children if _alive(p)]


def _api_token(run: RunCommand) -> str:
    """A token for the run command's admin, made in its own database."""
    code = (
        "from django.contrib.auth import get_user_model;"
        "from llmweb.accounts.services import api_token_create;"
        "print(api_token_create(user=get_user_model().objects.get(username='admin'),"
        " name='test')[1])"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_job_whose_worker_is_killed_succeeds_with_no_manual_step(run_command):
    run = run_command
    api = httpx.Client(
        base_url=run.url, headers={"Authorization": f"Bearer {_api_token(run)}"}, timeout=30
    )

    # A small upload of our own: the demo's full SMS set makes the final evaluation slow.
    sample = (ROOT / "llmweb" / "catalog" / "samples" / "SMSSpamCollection.tsv").read_bytes()
    small = b"\n".join(sample.splitlines()[:240]) + b"\n"
    r = api.post(
        "/api/v1/datasets/",
        files={"file": ("sms.tsv", small)},
        data={"schema": "classification", "name": "sms small"},
    )
    assert r.status_code == 201, r.text
    dataset = r.json()["id"]
    wait_for(
        lambda: api.get(f"/api/v1/datasets/{dataset}/").json()["status"] == "ready",
        timeout=300,
        interval=1,
        what="the uploaded dataset",
    )
    models = api.get("/api/v1/models/").json()["results"]
    base = next(m["id"] for m in models if m["source"] == "bundled")
    params = {"max_steps": 12, "batch_size": 8, "max_length": 32, "save_steps": 3}
    r = api.post("/api/v1/jobs/", json={"base_model": base, "dataset": dataset, "params": params})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]

    def past_a_checkpoint() -> bool:
        job = api.get(f"/api/v1/jobs/{job_id}/").json()
        return bool(job["checkpoint_step"]) and job["step"] > job["checkpoint_step"]

    wait_for(past_a_checkpoint, timeout=300, interval=0.2, what="a checkpoint and a step past it")
    (gpu,) = run.pids("gpu worker")
    os.kill(gpu, signal.SIGKILL)  # the worker's main process; the run command ends its pool
    killed_at = time.monotonic()
    print(f"killed the gpu worker at step {api.get(f'/api/v1/jobs/{job_id}/').json()['step']}")

    def finished() -> dict | None:
        job = api.get(f"/api/v1/jobs/{job_id}/").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    try:
        job = wait_for(finished, timeout=400, interval=0.5, what="the job to finish")
    except TimeoutError:
        state = api.get(f"/api/v1/jobs/{job_id}/").json()
        raise AssertionError(f"{state}\n{run.text()[-4000:]}") from None
    print(f"job succeeded {time.monotonic() - killed_at:.1f} s after the SIGKILL")
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2 and job["step"] == 12
    assert len(run.pids("gpu worker")) == 2
