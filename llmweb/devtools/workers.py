"""The one way this project builds a Celery worker command line.

The run command, the tests and the benchmark each used to spell it out (four copies, each
a little different); the node name must carry the instance (``gpu.<instance>@host``) so
two deployments on one Redis tell their workers apart, and that rule lives here.

``python -m llmweb.devtools.workers ROLE QUEUES [--concurrency N] [--beat] [--pool P]
[--no-prefetch]`` execs the
same command, so docker-compose uses it too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from llmweb.core.instance import worker_node_name


def worker_command(
    *,
    role: str,
    queues: str | Iterable[str],
    instance: str,
    concurrency: int = 1,
    host: str = "%h",
    beat_schedule: Path | str | None = None,
    loglevel: str = "INFO",
    quiet: bool = False,
    pool: str | None = None,
    prefetch: bool = True,
) -> list[str]:
    """argv of a worker named ``<role>.<instance>@<host>`` consuming ``queues``.

    Args:
        beat_schedule: run Celery beat inside this worker, keeping its schedule file there
            (one beat per deployment: the reaper must not run twice).
        quiet: no gossip and no mingle; a short-lived worker (tests, benchmarks) starts
            faster without them and needs neither.
        pool: Celery's pool (``threads`` for an inference worker: one model cache per
            process, see docs/ARCHITECTURE.md "Serving"); None keeps Celery's prefork.
        prefetch: False takes a message only when a slot is free (``--disable-prefetch``):
            the inference worker's waiting requests then stay on the queue, where their
            position is read (an early-acked task frees a prefetch slot at once, so Celery
            would otherwise hold up to one more waiting request per thread, out of sight).
    """
    names = queues if isinstance(queues, str) else ",".join(queues)
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "llmweb",
        "worker",
        "-Q",
        names,
        "-c",
        str(concurrency),
        "-n",
        worker_node_name(role, instance, host),
        "--loglevel",
        loglevel,
    ]
    if quiet:
        cmd += ["--without-gossip", "--without-mingle"]
    if beat_schedule is not None:
        cmd += ["-B", "-s", str(beat_schedule)]
    if pool:
        cmd += ["-P", pool]
    if not prefetch:
        cmd += ["--disable-prefetch"]
    return cmd


def main(argv: list[str] | None = None) -> None:
    """Exec a worker of this deployment (its instance comes from the settings)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", help="first part of the node name, e.g. gpu0")
    parser.add_argument("queues", help="comma-separated queues, e.g. gpu,inference,default")
    parser.add_argument("--concurrency", "-c", type=int, default=1)
    parser.add_argument("--beat", action="store_true", help="also run Celery beat")
    parser.add_argument(
        "--pool", "-P", default=None, help="Celery pool; 'threads' for an inference worker"
    )
    parser.add_argument(
        "--no-prefetch",
        action="store_true",
        help="take a message only when a slot is free (inference: positions stay readable)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmweb.settings")
    import django

    django.setup()
    from django.conf import settings

    cmd = worker_command(
        role=args.role,
        queues=args.queues,
        instance=settings.LLMWEB_INSTANCE,
        concurrency=args.concurrency,
        beat_schedule=Path(settings.VAR_DIR) / "celerybeat-schedule" if args.beat else None,
        pool=args.pool,
        prefetch=not args.no_prefetch,
    )
    os.execv(cmd[0], cmd)  # noqa: S606 - our own interpreter and a fixed argv


if __name__ == "__main__":
    main()
