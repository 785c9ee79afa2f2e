"""The README promises only what exists: its API calls resolve, its script runs."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

from jobs.models import JobEvent, JobStatus
from llmweb.accounts import services
from tests.factories import bundled_model, job_record

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_api_call_in_the_readme_resolves():
    paths = re.findall(r"\$API(/[\w/{}.-]*)", README)
    assert len(paths) >= 5
    for path in paths:
        try:
            resolve("/api/v1" + path)
        except Resolver404:
            pytest.fail(f"README calls {path}, which the API does not serve")


def test_readme_names_no_job_kind_that_is_not_registered():
    from jobs.kinds import all_kinds

    kinds = {k.name for k in all_kinds()}
    for word in ("distill", "evaluate", "compress"):
        if word not in kinds:
            assert not re.search(rf"\b{word}\b", README.split("## What runs")[0]), word
    assert "talk to the results" not in README


@pytest.mark.django_db(transaction=True)
def test_the_websocket_script_in_the_readme_watches_a_job(live_server_proc, alice, team, capsys):
    job = job_record(team=team, base_model=bundled_model(team), status=JobStatus.SUCCEEDED)
    for seq, status in enumerate(("queued", "running", "succeeded"), start=1):
        JobEvent.objects.create(job=job, seq=seq, kind="status", data={"status": status})
    type(job).objects.filter(pk=job.pk).update(last_seq=3)
    _, secret = services.api_token_create(user=alice, name="readme")
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    code = "\n".join(line for line in block.splitlines() if not line.startswith("asyncio.run("))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    host = live_server_proc.url.removeprefix("http://")
    asyncio.run(asyncio.wait_for(namespace["watch"](job.pk, secret, host), 20))
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 2)[:2] for line in printed] == [
        ["1", "status"],
        ["2", "status"],
        ["3", "status"],
    ]
