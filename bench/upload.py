"""Upload + processing throughput and memory through the real stack (not a test).

    .venv/bin/python bench/upload.py --mb 200

Generates a JSONL and a CSV file of ``--mb`` MB each, starts the ASGI server (uvicorn) and one Celery
worker on a temporary SQLite database and storage folder (Redis from REDIS_URL, else an
embedded one), uploads each file through ``POST /api/v1/datasets/`` and waits until it
is ready. Reports end-to-end MB/s (upload start -> ready), the upload alone, and the
peak memory of the web and worker process trees: the kernel's own peak RSS of each process
(VmHWM in /proc/<pid>/status, reset before each upload through clear_refs, so no short
spike is missed), summed over the tree, next to the tree's RSS sampled every 20 ms.
For comparison the same file goes through a bare ``datasets.load_dataset`` +
``save_to_disk`` in a subprocess; the ratio is ours / bare time.
Runs each file ``--repeats`` times (interleaved) and prints each run, then the median and
spread. Targets (issue 13): ratio <= 2.5, worker <= 500 MiB, web <= 200 MiB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmweb.devtools.redis import free_port, start_embedded  # noqa: E402
from llmweb.devtools.server import asgi_command  # noqa: E402

WORDS = (
    "the a model data train test token learn fast slow good bad great terrible movie film "
    "story actor plot music ending scene love hate boring brilliant awful fun long short "
    "price service food staff room clean dirty quick delivery package broken works fine"
).split()
LABELS = ["positive", "negative", "neutral", "mixed"]

BARE = """
import sys, time, datasets
kind, path, out, cache = sys.argv[1:5]
t = time.perf_counter()
ds = datasets.load_dataset(kind, data_files=path, cache_dir=cache, split="train")
ds.save_to_disk(out)
print(time.perf_counter() - t, len(ds))
"""


def make_text(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(8, 60)))


def generate(path: Path, mb: int, kind: str) -> int:
    rng = random.Random(0)
    target = mb * 1_000_000
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f) if kind == "csv" else None
        if writer:
            writer.writerow(["text", "label"])
        while f.tell() < target:
            text, label = make_text(rng), rng.choice(LABELS)
            if writer:
                writer.writerow([text, label])
            else:
                f.write(json.dumps({"text": text, "label": label}) + "\n")
            rows += 1
    return rows


def _tree(p: psutil.Process) -> list[psutil.Process]:
    try:
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return [p]


def kernel_peak(p: psutil.Process) -> int:
    """Sum over the tree of each process's peak RSS as the kernel counted it (VmHWM).

    A sampler can miss a spike shorter than its period; the kernel cannot. The sum is an
    upper bound of the tree's peak (two processes may peak at different moments).
    """
    total = 0
    for q in _tree(p):
        try:
            for line in Path(f"/proc/{q.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def kernel_peak_reset(p: psutil.Process) -> None:
    """Start each process's VmHWM again from its current RSS (Linux >= 4.0: clear_refs 5)."""
    for q in _tree(p):
        try:
            Path(f"/proc/{q.pid}/clear_refs").write_text("5")
        except OSError:
            pass


class Sampler(threading.Thread):
    """Peak RSS of each named process tree, sampled every 20 ms (see ``kernel_peak``)."""

    def __init__(self, procs: dict[str, int]):
        super().__init__(daemon=True)
        self.procs = {k: psutil.Process(pid) for k, pid in procs.items()}
        self.peak = dict.fromkeys(procs, 0)
        self.running = True

    def tree_rss(self, p: psutil.Process) -> int:
        total = 0
        for q in _tree(p):
            try:
                total += q.memory_info().rss
            except psutil.Error:
                pass
        return total

    def reset(self) -> None:
        self.peak = dict.fromkeys(self.peak, 0)
        for p in self.procs.values():
            kernel_peak_reset(p)

    def kernel(self) -> dict[str, int]:
        return {name: kernel_peak(p) for name, p in self.procs.items()}

    def run(self) -> None:
        while self.running:
            for name, p in self.procs.items():
                self.peak[name] = max(self.peak[name], self.tree_rss(p))
            time.sleep(0.02)


def run(cmd: list[str], env: dict[str, str]) -> str:
    return subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout


HEADER = (
    f"{'file':6} {'run':>3} {'MB':>6} {'rows':>9} {'upload s':>9} {'queue s':>8} {'e2e s':>7} "
    f"{'bare s':>7} {'ratio':>6} {'web MiB':>8} {'worker MiB':>10} {'load':>5}"
)


def row_text(r: dict) -> str:
    return (
        f"{r['ext']:6} {r['run']:3} {r['mb']:6.0f} {r['rows']:9,} {r['upload']:9.1f} "
        f"{r['queue']:8.1f} {r['e2e']:7.1f} {r['bare']:7.1f} {r['ratio']:6.2f} "
        f"{r['web']:8.0f} {r['worker']:10.0f} {r['load']:5.1f}"
    )


def spread(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def measure(client, sampler, env, py, tmp, ext, kind, path, rows, rep) -> dict:
    """One upload of ``path`` through the stack, then the bare baseline on the same file."""
    size = path.stat().st_size / 1e6
    sampler.reset()
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        r = client.post(
            "/api/v1/datasets/",
            files={"file": (path.name, f, "application/octet-stream")},
            data={"schema": "classification", "name": f"bench-{ext}-{rep}"},
        )
    t_upload = time.perf_counter() - t0
    assert r.status_code == 201, r.text
    ds_id = r.json()["id"]
    t_started = None
    while True:
        d = client.get(f"/api/v1/datasets/{ds_id}/").json()
        if t_started is None and (d.get("progress") or d["status"] in ("ready", "failed")):
            t_started = time.perf_counter()
        if d["status"] in ("ready", "failed"):
            break
        time.sleep(0.1)
    t_total = time.perf_counter() - t0
    if d["status"] != "ready":
        raise RuntimeError(f"{ext} failed: {d['error']}")
    assert d["total_rows"] == rows, (d["total_rows"], rows)
    hwm = sampler.kernel()
    out = subprocess.run(
        [py, "-c", BARE, kind, str(path), str(tmp / f"bare-{ext}"), str(tmp / "hf-cache")],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    t_bare = float(out[0])
    shutil.rmtree(tmp / f"bare-{ext}", ignore_errors=True)
    shutil.rmtree(tmp / "hf-cache", ignore_errors=True)
    mib = 1 << 20
    return {
        "ext": ext, "run": rep + 1, "mb": size, "rows": rows, "upload": t_upload,
        "queue": t_started - t0 - t_upload, "e2e": t_total, "bare": t_bare,
        "ratio": t_total / t_bare, "web": hwm["web"] / mib, "worker": hwm["worker"] / mib,
        "load": os.getloadavg()[0],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="size of each generated file (MB)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--repeats", type=int, default=3, help="runs per file (median and spread)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="llmweb-bench-"))
    redis = None
    procs: list[subprocess.Popen] = []
    try:
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            redis = start_embedded()
            redis_url = redis.url
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "llmweb.settings",
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
            "LLMWEB_VAR_DIR": str(tmp / "var"),
            "LLMWEB_STORAGE_DIR": str(tmp / "storage"),
            "LLMWEB_MAX_UPLOAD_BYTES": str(max(1 << 30, 3 * args.mb * 1_000_000)),
            "REDIS_URL": redis_url,
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(tmp),
        }
        env.pop("PYTEST_VERSION", None)
        py = sys.executable
        run([py, "manage.py", "migrate", "-v", "0"], env)
        token = run(
            [py, "manage.py", "shell", "-c",
             "from django.contrib.auth import get_user_model;"
             "from llmweb.accounts.services import user_signup_setup, api_token_create;"
             "u = get_user_model().objects.create_user('bench', password='bench bench 42');"
             "user_signup_setup(user=u); print(api_token_create(user=u, name='bench')[1])"],
            env,
        ).strip().splitlines()[-1]  # fmt: skip
        port = free_port()
        logs = {n: open(tmp / f"{n}.log", "w") for n in ("web", "worker")}  # noqa: SIM115
        web = subprocess.Popen(
            asgi_command("127.0.0.1", port, access_log=False),
            env=env, cwd=ROOT, stdout=logs["web"], stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        worker = subprocess.Popen(
            [py, "-m", "celery", "-A", "llmweb", "worker", "-Q", "default", "-c", "1",
             "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
            env=env, cwd=ROOT, stdout=logs["worker"], stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        procs = [web, worker]
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(base_url=base, headers=headers, timeout=600)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/api/v1/me/").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError((tmp / "web.log").read_text()[-2000:])
            time.sleep(0.3)
        time.sleep(3)  # let the worker finish booting before measuring
        sampler = Sampler({"web": web.pid, "worker": worker.pid})
        sampler.start()
        idle = dict(sampler.peak)
        time.sleep(0.5)
        idle = {k: sampler.tree_rss(p) for k, p in sampler.procs.items()}

        files = {}
        for kind, ext in (("json", "jsonl"), ("csv", "csv")):
            path = tmp / f"data.{ext}"
            files[ext] = (kind, path, generate(path, args.mb, kind))
        results = []
        for rep in range(args.repeats):
            for ext, (kind, path, rows) in files.items():
                results.append(measure(client, sampler, env, py, tmp, ext, kind, path, rows, rep))
                print(row_text(results[-1]), flush=True)
        sampler.running = False

        mib = 1 << 20
        print(f"\nidle RSS: web {idle['web'] / mib:.0f} MiB, worker {idle['worker'] / mib:.0f} MiB")
        print(f"\nEach run ({args.repeats} per file, interleaved):")
        print(HEADER)
        for r in results:
            print(row_text(r))
        print(f"\nMedian (min-max) over {args.repeats} runs:")
        print(
            "| file | MB | rows | upload s | queue s | e2e s | bare s | ratio | web MiB | worker MiB |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for ext in files:
            mine = [r for r in results if r["ext"] == ext]
            print(
                f"| {ext} | {mine[0]['mb']:.0f} | {mine[0]['rows']:,} | "
                + " | ".join(
                    spread([r[k] for r in mine], fmt)
                    for k, fmt in (
                        ("upload", ".1f"), ("queue", ".1f"), ("e2e", ".1f"), ("bare", ".1f"),
                        ("ratio", ".2f"), ("web", ".0f"), ("worker", ".0f"),
                    )
                )
                + " |"
            )  # fmt: skip
        print("MiB: kernel peak RSS (VmHWM) summed over each process tree (20 ms samples agree)")
        print("queue s: the 201 -> the worker's first progress on the record")
        print("targets (issue 13): ratio <= 2.5, worker <= 500 MiB, web <= 200 MiB")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        if redis is not None:
            redis.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
