"""Load through the whole stack: concurrent submissions, many watchers, many API clients.

    .venv/bin/python bench/load.py [--database-url postgres://…/llmweb_load]
                                   [--submissions 50] [--users 10] [--watchers 200]
                                   [--clients 100] [--requests 2000]

One ASGI server (uvicorn, as the run command starts it), one training worker, Redis and the
database (``--database-url``; SQLite in a temp folder without it, as on a fresh machine).
Three phases, each judged against issue 14's targets:

  1. ``--submissions`` jobs posted at once by ``--users`` users (bearer tokens, two teams)
     while no worker consumes the queue: every POST answered 201, one Job row and one
     broker message per submission (none lost, none duplicated), and the queue positions
     the API reports are exactly 1..N (consistent). Then all are cancelled over the API.
  2. ``--watchers`` websocket clients on one running job (a real fine-tune on the worker):
     every watcher receives every event of the job, in ``seq`` order, none twice; delivery
     latency = receipt time - the event's stored time (same clock: one machine); the web
     process's peak RSS (VmHWM) is read from /proc.
  3. ``--clients`` concurrent API clients, ``--requests`` GETs in all, over the list
     endpoints: p50/p99 latency and the error count (any status but 200).

Targets: 0 lost or duplicated; p95 delivery <= 100 ms with 200 watchers; 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SMS = ROOT / "llmweb" / "catalog" / "samples" / "SMSSpamCollection.tsv"
QUEUE = "bench-load-gpu"
FINISHED = ("succeeded", "failed", "cancelled")


def start_stack(work: Path, database_url: str | None) -> tuple[dict, subprocess.Popen]:
    """Redis + migrated database + the ASGI server; the worker starts later (phase 2)."""
    from llmweb.devtools.redis import ensure_redis, free_port
    from llmweb.devtools.server import asgi_command

    redis = ensure_redis()
    env = {
        **os.environ,
        "LLMWEB_VAR_DIR": str(work / "var"),
        # Its own key prefix per run: a crashed run's messages are not counted again.
        "LLMWEB_INSTANCE": f"load{os.getpid()}",
        "DATABASE_URL": database_url or f"sqlite:///{work}/bench.sqlite3",
        "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/13",
        "DJANGO_SETTINGS_MODULE": "llmweb.settings",
        "LLMWEB_TRAIN_QUEUE": QUEUE,
        # The API throttle is per token; the clients of phase 3 are many on few tokens.
        "LLMWEB_API_RATE": "100000/min",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith(("LLMWEB_", "DJANGO_"))})
    os.environ.update({"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"]})
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    log = open(work / "web.log", "w")  # noqa: SIM115
    web = subprocess.Popen(
        asgi_command("127.0.0.1", port, access_log=False),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    env["URL"] = f"http://127.0.0.1:{port}"
    return env, web


def start_worker(work: Path, env: dict) -> subprocess.Popen:
    from llmweb.devtools.workers import worker_command

    log = open(work / "worker.log", "w")  # noqa: SIM115
    cmd = worker_command(
        role="load", queues=QUEUE, instance=env["LLMWEB_INSTANCE"], concurrency=1, quiet=True
    )
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait(check, timeout: float = 600, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if v := check():
            return v
        time.sleep(interval)
    raise TimeoutError(getattr(check, "__name__", "condition"))


def prepare(work: Path, users: int) -> dict:
    """Two teams, ``users`` members with one token each, the SMS sample ready in each."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from jobs.engine.base import NullReporter
    from jobs.engine.data import ProcessConfig, process_dataset
    from llmweb.accounts.services import api_token_create, team_create, team_invite
    from llmweb.catalog.models import Dataset, RegisteredModel

    processed = work / "sms"
    result = process_dataset(
        ProcessConfig(source=SMS, out_dir=processed, schema="classification", seed=42),
        NullReporter(),
    )
    User = get_user_model()  # noqa: N806
    owners = [User.objects.create_user(f"owner{t}", password="load test 123") for t in (0, 1)]
    teams = [team_create(owner=o, name=f"load-{t}") for t, o in enumerate(owners)]
    per_team = {}
    for team in teams:
        ds = Dataset.objects.create(
            team=team,
            name="sms",
            schema="classification",
            status="ready",
            original_filename=SMS.name,
            label_names=result.label_names,
            num_rows=result.num_rows,
            stats={"mean_chars": 80},
        )
        shutil.copytree(processed, ds.processed_dir)
        model = RegisteredModel.objects.get(team=team, source="bundled")
        per_team[team.id] = {"dataset": ds.id, "model": model.id}
    clients = []
    for i in range(users):
        team, owner = teams[i % 2], owners[i % 2]
        user = User.objects.create_user(f"user{i}", password="load test 123")
        team_invite(by=owner, team=team, username=user.username, role="member")
        _, secret = api_token_create(user=user, name="load")
        clients.append({"token": secret, "team": team.id, **per_team[team.id]})
    return {"clients": clients, "owner": owners[0]}


def job_body(c: dict, steps: int, batch: int, max_length: int) -> dict:
    return {
        "type": "finetune",
        "base_model": c["model"],
        "dataset": c["dataset"],
        "params": {"max_steps": steps, "batch_size": batch, "max_length": max_length},
    }


async def submissions(url: str, clients: list[dict], n: int) -> dict:
    """Phase 1: ``n`` concurrent POSTs, then the ledger: DB rows, broker messages, positions."""
    import httpx

    from jobs.models import Job

    async def post(i: int, http: httpx.AsyncClient) -> tuple[int, dict]:
        c = clients[i % len(clients)]
        r = await http.post(
            "/api/v1/jobs/",
            json=job_body(c, 2, 8, 32),
            headers={"Authorization": f"Bearer {c['token']}"},
        )
        return r.status_code, r.json()

    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        answers = await asyncio.gather(*(post(i, http) for i in range(n)))
        seconds = time.perf_counter() - t0
        ids = [body.get("id") for status, body in answers if status == 201]
        positions = []
        for i, job_id in enumerate(ids):
            c = clients[i % len(clients)]
            r = await http.get(
                f"/api/v1/jobs/{job_id}/", headers={"Authorization": f"Bearer {c['token']}"}
            )
            positions.append(r.json()["queue_position"])
        rows = await asyncio.to_thread(
            lambda: list(Job.objects.filter(queue=QUEUE).values_list("id", flat=True))
        )
        broker_messages = broker_queue_length(QUEUE)
        for i, job_id in enumerate(ids):
            c = clients[i % len(clients)]
            await http.post(
                f"/api/v1/jobs/{job_id}/cancel/",
                headers={"Authorization": f"Bearer {c['token']}"},
            )
    return {
        "posted": n,
        "created": len(ids),
        "refused": [a for a in answers if a[0] != 201][:3],
        "rows": len(rows),
        "distinct_rows": len(set(rows)),
        "broker_messages": broker_messages,
        "positions_ok": sorted(p for p in positions if p) == list(range(1, len(ids) + 1)),
        "seconds": seconds,
    }


async def watchers(url: str, client: dict, n: int, steps: int, web_pid: int) -> dict:
    """Phase 2: ``n`` websockets on one running job; every event, in order, and how fast."""
    import httpx
    import websockets

    from jobs.models import JobEvent

    headers = {"Authorization": f"Bearer {client['token']}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as http:
        r = await http.post("/api/v1/jobs/", json=job_body(client, steps, 8, 64))
        r.raise_for_status()
        job_id = r.json()["id"]

    ws_url = url.replace("http", "ws", 1) + f"/ws/jobs/{job_id}/"
    received: list[list[int]] = [[] for _ in range(n)]
    delays: list[float] = []
    ready = asyncio.Event()
    connected = 0

    async def watch(k: int) -> None:
        nonlocal connected
        async with websockets.connect(
            ws_url, additional_headers=headers, open_timeout=120, max_queue=None
        ) as ws:
            connected += 1
            if connected == n:
                ready.set()
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 600))
                now = time.time()
                if not msg.get("seq"):  # the snapshot (seq 0) is not an event
                    continue
                received[k].append(msg["seq"])
                if ready.is_set() and msg.get("kind") == "progress":
                    delays.append(now - datetime.fromisoformat(msg["time"]).timestamp())
                if msg.get("kind") == "status" and msg["data"].get("status") in FINISHED:
                    return

    await asyncio.gather(*(watch(k) for k in range(n)))
    stored = await asyncio.to_thread(
        lambda: list(JobEvent.objects.filter(job_id=job_id).values_list("seq", flat=True))
    )
    stored.sort()
    complete = sum(1 for seqs in received if seqs == stored)
    return {
        "job": job_id,
        "events": len(stored),
        "complete_in_order": complete,
        "delays": delays,
        "web_vmhwm_mib": _vmhwm_mib(web_pid),
    }


async def api_clients(url: str, clients: list[dict], n: int, total: int) -> dict:
    """Phase 3: ``n`` concurrent clients share ``total`` GETs over the list endpoints."""
    import httpx

    paths = ["/api/v1/jobs/", "/api/v1/datasets/", "/api/v1/models/", "/api/v1/job-kinds/"]
    latencies: list[float] = []
    errors: list[int] = []
    counter = iter(range(total))

    async def client(k: int, http: httpx.AsyncClient) -> None:
        c = clients[k % len(clients)]
        headers = {"Authorization": f"Bearer {c['token']}"}
        for i in counter:
            t = time.perf_counter()
            r = await http.get(paths[i % len(paths)], headers=headers)
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors.append(r.status_code)

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(k, http) for k in range(n)))
        seconds = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "seconds": seconds}


def broker_queue_length(queue: str) -> int:
    """Messages waiting in the queue's Redis lists (one per priority step, under the
    instance's key prefix), read straight from Redis, not through Celery."""
    import redis
    from django.conf import settings

    r = redis.Redis.from_url(os.environ["REDIS_URL"])
    total = 0
    for key in r.scan_iter(match=f"{settings.LLMWEB_REDIS_PREFIX}{queue}*"):
        if r.type(key) == b"list":
            total += r.llen(key)
    return total


def _vmhwm_mib(pid: int) -> float:
    """Peak resident memory of a process, from the kernel (no sampling to miss peaks)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default=os.environ.get("LLMWEB_BENCH_DATABASE_URL"))
    ap.add_argument("--submissions", type=int, default=50)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--watchers", type=int, default=200)
    ap.add_argument("--steps", type=int, default=60, help="training steps of the watched job")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep the work folder and its logs")
    a = ap.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="llmweb-load-"))
    env, web = start_stack(work, a.database_url)
    procs = [web]
    try:
        import httpx

        wait(lambda: _answers(env["URL"]), timeout=120)
        setup = prepare(work, a.users)
        clients = setup["clients"]
        sub = asyncio.run(submissions(env["URL"], clients, a.submissions))
        procs.append(start_worker(work, env))
        from llmweb.celery import app

        wait(lambda: app.control.inspect(timeout=0.5).ping(), timeout=120)
        watch = asyncio.run(watchers(env["URL"], clients[0], a.watchers, a.steps, web.pid))
        api = asyncio.run(api_clients(env["URL"], clients, a.clients, a.requests))
        del httpx
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    db = "PostgreSQL" if (a.database_url or "").startswith("postgres") else "SQLite"
    lost = sub["posted"] - sub["created"] + sub["created"] - sub["rows"]
    dup = sub["rows"] - sub["distinct_rows"] + max(0, sub["broker_messages"] - sub["created"])
    p95 = _pct(watch["delays"], 95) * 1000
    lat = api["latencies"]
    print(f"\nllmweb load benchmark ({db}, {os.cpu_count()} cores), {datetime.now():%Y-%m-%d}\n")
    print("| phase | figure | value | target |")
    print("|---|---|---|---|")
    print(
        f"| 1 submissions | {a.submissions} POSTs from {a.users} users | "
        f"{sub['created']} created in {sub['seconds']:.1f} s | all 201 |"
    )
    print(
        f"| | job rows / broker messages | {sub['rows']} / {sub['broker_messages']} | "
        f"{a.submissions} / {a.submissions} |"
    )
    print(f"| | lost / duplicated | {lost} / {dup} | 0 / 0 |")
    print(f"| | queue positions are 1..N | {sub['positions_ok']} | True |")
    print(
        f"| 2 watchers | {a.watchers} sockets on one job, {watch['events']} events | "
        f"{watch['complete_in_order']} got every event in order | {a.watchers} |"
    )
    print(
        f"| | delivery p50 / p95 / max | {_pct(watch['delays'], 50) * 1000:.0f} / "
        f"{p95:.0f} / {max(watch['delays'], default=float('nan')) * 1000:.0f} ms | "
        f"p95 <= 100 ms |"
    )
    print(f"| | web process peak RSS | {watch['web_vmhwm_mib']:.0f} MiB | |")
    print(
        f"| 3 API clients | {a.clients} clients, {len(lat)} GETs in {api['seconds']:.1f} s | "
        f"{len(lat) / api['seconds']:.0f} req/s | |"
    )
    print(
        f"| | latency p50 / p99 | {statistics.median(lat) * 1000:.0f} / "
        f"{_pct(lat, 99) * 1000:.0f} ms | |"
    )
    print(f"| | errors | {len(api['errors'])} {sorted(set(api['errors']))} | 0 |")
    if sub["refused"]:
        print("\nrefused submissions (first 3):", sub["refused"])
    if a.keep or api["errors"] or watch["complete_in_order"] < a.watchers:
        print(f"\nlogs kept in {work} (web.log, worker.log)")
    else:
        shutil.rmtree(work, ignore_errors=True)


def _answers(url: str) -> bool:
    import httpx

    try:
        httpx.get(url + "/healthz", timeout=15)  # pings the workers; slow, 503 with none
        return True
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
