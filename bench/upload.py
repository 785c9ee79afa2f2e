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
Targets (issue 3): worker < 500 MB, web < 200 MB, ratio <= 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="size of each generated file (MB)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
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

        results = []
        for kind, ext in (("json", "jsonl"), ("csv", "csv")):
            path = tmp / f"data.{ext}"
            rows = generate(path, args.mb, kind)
            size = path.stat().st_size / 1e6
            sampler.reset()
            t0 = time.perf_counter()
            with open(path, "rb") as f:
                r = client.post(
                    "/api/v1/datasets/",
                    files={"file": (path.name, f, "application/octet-stream")},
                    data={"schema": "classification", "name": f"bench-{ext}"},
                )
            t_upload = time.perf_counter() - t0
            assert r.status_code == 201, r.text
            ds_id = r.json()["id"]
            while True:
                d = client.get(f"/api/v1/datasets/{ds_id}/").json()
                if d["status"] in ("ready", "failed"):
                    break
                time.sleep(0.2)
            t_total = time.perf_counter() - t0
            if d["status"] != "ready":
                raise RuntimeError(f"{ext} failed: {d['error']}")
            assert d["total_rows"] == rows, (d["total_rows"], rows)
            peak = dict(sampler.peak)
            hwm = sampler.kernel()
            out = subprocess.run(
                [py, "-c", BARE, kind, str(path), str(tmp / f"bare-{ext}"), str(tmp / "hf-cache")],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            t_bare = float(out[0])
            results.append((ext, size, rows, t_upload, t_total, t_bare, peak, hwm))
            path.unlink()
            shutil.rmtree(tmp / f"bare-{ext}", ignore_errors=True)
            shutil.rmtree(tmp / "hf-cache", ignore_errors=True)
        sampler.running = False

        mib = 1 << 20
        print(f"\nidle RSS: web {idle['web'] / mib:.0f} MiB, worker {idle['worker'] / mib:.0f} MiB")
        print(
            f"{'file':6} {'MB':>6} {'rows':>9} {'upload s':>9} {'e2e s':>7} {'e2e MB/s':>9} "
            f"{'bare s':>7} {'bare MB/s':>9} {'ratio':>6} {'web MiB':>8} {'worker MiB':>10}"
        )
        for ext, size, rows, t_up, t_tot, t_bare, peak, hwm in results:
            print(
                f"{ext:6} {size:6.0f} {rows:9,} {t_up:9.1f} {t_tot:7.1f} {size / t_tot:9.1f} "
                f"{t_bare:7.1f} {size / t_bare:9.1f} {t_tot / t_bare:6.2f} "
                f"{hwm['web'] / mib:8.0f} {hwm['worker'] / mib:10.0f}"
            )
            print(
                f"{'':6} sampled every 20 ms: web {peak['web'] / mib:.0f} MiB, "
                f"worker {peak['worker'] / mib:.0f} MiB"
            )
        print("MiB columns: kernel peak RSS (VmHWM) summed over each process tree")
        print("targets: worker < 500 MiB, web < 200 MiB, ratio <= 2.0")
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
