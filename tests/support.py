"""Shared test helpers: real processes (worker, ASGI server), waits, API and websocket calls.

Fixtures live in ``conftest.py``; rows and files are built in ``factories.py``; everything a
test module calls that is neither lives here, once. Test modules import from these two
modules only, never from ``conftest.py`` or from each other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

from llmweb.core.instance import redis_key_prefix, worker_node_name
from llmweb.devtools.redis import EmbeddedRedis, free_port, start_embedded
from llmweb.devtools.server import asgi_command
from llmweb.devtools.workers import worker_command

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = ROOT / "llmweb" / "catalog" / "samples"
FINISHED = ("succeeded", "failed", "cancelled")

# One budget for every wait: a wait never outlives the test's own pytest-timeout, so a slow
# machine fails with "timed out waiting for <what>" instead of a bare timeout stack dump.
JOB_TIMEOUT = 150.0
SETTLE_TIMEOUT = 90.0
WORKER_START_TIMEOUT = 60.0
_deadline: float | None = None


def set_test_deadline(deadline: float | None) -> None:
    """Called by conftest for each test: waits are cut to end 5 s before pytest-timeout."""
    global _deadline
    _deadline = deadline


def shared_data(name: str) -> Path:
    """A sample file shipped with the app; a missing one is a broken checkout, not a skip."""
    path = SAMPLES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"sample data {name} is missing from {SAMPLES_DIR}")
    return path


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
    """Poll ``check`` until it returns something truthy, and return that.

    The wait ends at ``timeout`` or 5 s before the test's pytest-timeout, whichever is first.
    """
    deadline = time.monotonic() + timeout
    if _deadline is not None:
        deadline = min(deadline, _deadline - 5)
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


def celery_app_for(instance: str):
    """The project's Celery app, or a client of another instance on the same Redis.

    Tests that run two deployments side by side send and inspect through this.
    """
    from llmweb.celery import app

    if instance == settings.LLMWEB_INSTANCE:
        return app
    from celery import Celery

    prefix = redis_key_prefix(instance)
    other = Celery(f"llmweb-{instance}", set_as_current=False)
    other.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        result_backend=settings.CELERY_RESULT_BACKEND,
        broker_transport_options={
            **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            "global_keyprefix": prefix,
        },
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=settings.CELERY_TASK_DEFAULT_QUEUE,
    )
    return other


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
        prefetch: bool = True,
    ):
        env = env or {}
        self.instance = env.get("LLMWEB_INSTANCE") or settings.LLMWEB_INSTANCE
        role = f"test-{uuid.uuid4().hex[:8]}"
        self.name = worker_node_name(role, self.instance, "localhost")
        self.log = log or Path(settings.VAR_DIR) / f"worker-{role}.log"
        self._fh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        args = worker_command(
            role=role,
            queues=queues,
            instance=self.instance,
            concurrency=concurrency,
            host="localhost",
            beat_schedule=self.log.with_suffix(".beat") if beat else None,
            quiet=True,
            pool=pool,
            prefetch=prefetch,
        )
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=child_env(**env),
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = WORKER_START_TIMEOUT) -> Worker:
        app = celery_app_for(self.instance)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            return (app.control.inspect(destination=[self.name], timeout=0.5).ping() or {}).get(
                self.name
            )

        wait_for(ready, timeout=timeout, interval=0.3, what=f"worker {self.name}")
        return self

    def wait_idle(self, timeout: float = 120.0) -> Worker:
        """Until this worker runs no task: a module-scoped worker may still be finishing an
        earlier test's requests (slow on a loaded machine), which would hold its threads."""
        app = celery_app_for(self.instance)

        def idle():
            active = app.control.inspect(destination=[self.name], timeout=1.0).active() or {}
            return self.name in active and not active[self.name]

        wait_for(idle, timeout=timeout, interval=0.5, what=f"worker {self.name} idle")
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

    def _pool_children(self) -> list:
        import psutil

        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    def pause_pool(self) -> None:
        """Freeze the pool processes (the jobs they run) with SIGSTOP; the main process,
        which talks to the broker, keeps running. A test paces a fault with this."""
        for child in self._pool_children():
            child.suspend()

    def resume_pool(self) -> None:
        for child in self._pool_children():
            child.resume()

    def limit_file_size(self, nbytes: int) -> int:
        """Cap the size of any file the worker's processes write (``RLIMIT_FSIZE``, set from
        outside with ``prlimit``, which needs no privilege for one's own processes): a write
        past it fails with ``EFBIG`` (Python ignores SIGXFSZ), like a disk that filled up.
        Returns how many processes were capped."""
        import resource

        import psutil

        capped = 0
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) != self.proc.pid:
                    continue
                _, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (nbytes, hard))
                capped += 1
            except (ProcessLookupError, psutil.Error):
                continue
        return capped


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
        wait_for(self._up, timeout=WORKER_START_TIMEOUT, what="the ASGI server")

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


# --- waits on records ----------------------------------------------------------------------


def wait_job_status(
    job_id: int, statuses: tuple[str, ...] = FINISHED, timeout: float = JOB_TIMEOUT
):
    """The job row once its status is one of ``statuses``."""
    from jobs.models import Job

    def check():
        job = Job.objects.get(pk=job_id)
        return job if job.status in statuses else None

    return wait_for(check, timeout=timeout, interval=0.2, what=f"job {job_id} in {statuses}")


def wait_dataset_settled(dataset_id: int, timeout: float = SETTLE_TIMEOUT):
    """The dataset row once processing ended (``ready`` or ``failed``)."""
    from llmweb.catalog.models import Dataset

    def check():
        d = Dataset.objects.get(pk=dataset_id)
        return d if d.status in ("ready", "failed") else None

    return wait_for(check, timeout=timeout, interval=0.2, what=f"dataset {dataset_id} to settle")


def wait_model_settled(model_id: int, timeout: float = SETTLE_TIMEOUT):
    """The model row once its arrival ended (anything but ``pending``)."""
    from llmweb.catalog.models import RegisteredModel

    def check():
        m = RegisteredModel.objects.get(pk=model_id)
        return m if m.status != "pending" else None

    return wait_for(check, timeout=timeout, interval=0.25, what=f"model {model_id} to settle")


def progress_steps(job_id: int) -> list[int]:
    """The steps of the job's progress events, in seq order."""
    from jobs.models import JobEvent

    return [
        e.data["step"]
        for e in JobEvent.objects.filter(job_id=job_id, kind="progress").order_by("seq")
    ]


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- API calls -----------------------------------------------------------------------------


def submit_job(client, model, dataset, *, job_type: str = "finetune", **params: Any) -> dict:
    """POST /api/v1/jobs/ and insist on 201; returns the body."""
    r = client.post(
        "/api/v1/jobs/",
        {"type": job_type, "base_model": model.id, "dataset": dataset.id, "params": params},
        format="json",
    )
    assert r.status_code == 201, r.json()
    return r.json()


def post_dataset(
    client, filename: str, content: bytes, *, schema: str = "classification", **fields: Any
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"file": SimpleUploadedFile(filename, content), "schema": schema, **fields}
    return client.post("/api/v1/datasets/", data, format="multipart")


def upload_model(client, path: Path, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"file": SimpleUploadedFile(path.name, path.read_bytes()), "name": name}
    return client.post("/api/v1/models/", data, format="multipart")


def zip_members(content: bytes) -> list[str]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        assert zf.testzip() is None
        return zf.namelist()


# --- websockets ----------------------------------------------------------------------------


def session_cookie(client, user) -> str:
    """Log ``user`` in on a Django test client and return the session id for a websocket."""
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def ws_job_connect(
    live: LiveServer,
    cookie: str | None,
    job_id: int,
    *,
    after: int | str = 0,
    origin: str | None = None,
):
    """A ``websockets.connect`` to ``/ws/jobs/<id>/`` as the session's user (None: anonymous)."""
    import websockets

    headers = {"Origin": origin or live.url}
    if cookie is not None:
        headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={cookie}"
    url = live.url.replace("http", "ws", 1) + f"/ws/jobs/{job_id}/?after={after}"
    return websockets.connect(url, additional_headers=headers)


# --- browser -------------------------------------------------------------------------------


from tests.skips import CHROMIUM  # noqa: E402, F401 - re-exported: the one path browsers run

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_login(page, base: str, username: str, password: str | None = None) -> None:
    from tests.factories import PASSWORD

    page.goto(base + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password or PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(base + "/")


@contextlib.contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point this process's Celery producers (sends, control pings) at the broker ``url``.

    The pools of the real broker are set aside untouched and put back afterwards; only the
    pools made for ``url`` are closed.
    """
    from llmweb.celery import app

    saved = app.conf.broker_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url = url
    app._pool = app.amqp._producer_pool = None  # rebuilt from broker_url on first use
    try:
        yield
    finally:
        made = app.amqp._producer_pool, app._pool
        app.conf.broker_url, app._pool, app.amqp._producer_pool = saved
        for pool in made:
            if pool is not None:
                pool.force_close_all()


def broker_unreachable() -> contextlib.AbstractContextManager[None]:
    """A broker that is down: this process's Celery producers point at a closed port."""
    return broker_at("redis://127.0.0.1:1/0")


# --- faults: a Redis of the test's own, a database outage, a full disk ----------------------


def dedicated_redis(port: int | None = None) -> EmbeddedRedis:
    """A Redis server for one test (the embedded one the run command starts), so the test
    can stop and restart it (on the same ``port``) without touching the shared Redis."""
    return start_embedded(port)


def redis_stop(server: EmbeddedRedis) -> int:
    """Stop ``server`` (its data goes with it, as in a restart without persistence) and
    return its port, for ``start_embedded`` to bring a fresh one up on."""
    server.stop()
    return int(server.url.rsplit(":", 1)[1].split("/")[0])


def database_outage(
    *, until: Callable[[], object], at_least: float = 3.0, at_most: float = 20.0
) -> int:
    """Make the test database unusable for other processes until ``until()`` is truthy
    and ``at_least`` seconds passed (``at_most`` seconds in any case); return how many
    times their connections were cut (PostgreSQL) or 1 (SQLite).

    PostgreSQL: every other connection to the test database is terminated, again and again
    (``pg_terminate_backend``, which is what a server restart looks like to a client; the
    server itself, shared by others, stays up). SQLite: an exclusive lock is held from a
    connection of our own, so other writers get "database is locked".
    """
    from django.db import connection

    started = time.monotonic()

    def over() -> bool:
        lasted = time.monotonic() - started
        return lasted >= at_most or (lasted >= at_least and bool(until()))

    if connection.vendor == "postgresql":
        cut = 0
        with connection.cursor() as cursor:
            while not over():
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                cut += cursor.fetchone()[0]
                time.sleep(0.05)
        return cut
    import sqlite3

    lock = sqlite3.connect(settings.DATABASES["default"]["NAME"], timeout=30)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        while not over():
            time.sleep(0.1)
        lock.rollback()
    finally:
        lock.close()
    return 1


def database_files_size() -> int:
    """Bytes of the largest SQLite file (database, WAL) a worker writes; 0 on PostgreSQL."""
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        base = str(settings.DATABASES["default"]["NAME"])
        files = [Path(base + suffix) for suffix in ("", "-wal", "-journal")]
        return max((f.stat().st_size for f in files if f.exists()), default=0)
    return 0


def complete_checkpoints(folder: Path) -> dict[str, bool]:
    """Each ``checkpoint-N`` folder under ``folder`` → whether its save finished (Trainer
    writes ``trainer_state.json`` last) and its weights load."""
    from safetensors import safe_open

    found = {}
    for path in sorted(folder.glob("checkpoint-*")):
        ok = (path / "trainer_state.json").is_file()
        if ok:
            with safe_open(str(path / "model.safetensors"), framework="pt") as weights:
                ok = bool(list(weights.keys()))
        found[path.name] = ok
    return found


# The stall timeout the playground tests' server runs with (a dead worker is reported
# after this many seconds without a message).
PLAYGROUND_STALL_SECONDS = 3
