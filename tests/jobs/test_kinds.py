"""A kind that exists only in this module runs through the real worker.

It proves the seam: a new kind is one module (parameter table, inputs, engine entry,
finish) and needs no edit elsewhere. The worker imports this module through
``LLMWEB_EXTRA_JOB_KINDS``, the way a deployment would add its own kinds.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import pytest

from jobs import services
from jobs.engine.base import Cancelled, EngineError
from jobs.engine.params import param, validate
from jobs.errors import JobError
from jobs.kinds import Input, JobKind, Outcome, register, unregister
from jobs.models import Job, JobEvent
from tests.support import Worker, wait_for, wait_job_status

TOY_QUEUE = "toys"


@dataclass
class CountConfig:
    steps: int = param("int", 5, "How many steps to count.", min=1, max=10_000, basic=True)
    delay: float = param("float", 0.01, "Seconds per step.", min=0.0, max=5.0)
    fail_at: int | None = param(
        "int", None, "Refuse (EngineError) at this step.", min=1, max=10_000, nullable=True
    )
    crash_at: int | None = param(
        "int", None, "Crash (ZeroDivisionError) at this step.", min=1, max=10_000, nullable=True
    )
    dataset_rows: int = 0

    def __post_init__(self) -> None:
        validate(self)


def count_engine(config: CountConfig, reporter) -> dict:
    """The engine: counts, reports each step, honours cancel, fails on request."""
    for step in range(1, config.steps + 1):
        if reporter.should_stop():
            raise Cancelled(f"stopped at step {step}")
        if config.fail_at == step:
            raise EngineError(f"refused at step {step}", code="count_refused", param="fail_at")
        if config.crash_at == step:
            _ = step / 0
        time.sleep(config.delay)
        reporter.emit("progress", step=step, total=config.steps, loss=1.0 / step)
    return {"counted": config.steps, "dataset_rows": config.dataset_rows}


class Count(JobKind):
    name = "test-count"
    label = "Count (test)"
    description = "Counts to N; exists only in the test-suite."
    queue = TOY_QUEUE
    config_class = CountConfig
    engine = f"{__name__}:count_engine"
    inputs = (Input("dataset", "dataset", "train", required=False),)

    def fixed_fields(self, *, inputs, job):
        dataset = inputs.get("dataset")
        return {"dataset_rows": int((dataset.num_rows or {}).get("train", 0)) if dataset else 0}

    def estimate(self, *, config, inputs):
        return {"steps": config.steps, "seconds_cpu": config.steps * config.delay}

    def finish(self, job, result):
        return Outcome(metrics={**result, "finished_by": "test-count"})


# The worker process registers the kind at import, as a deployment's own kind module would.
if __name__ in os.environ.get("LLMWEB_EXTRA_JOB_KINDS", ""):
    register(Count)


@pytest.fixture
def count_kind():
    register(Count)
    yield Count
    unregister(Count.name)


@pytest.fixture(scope="module")
def count_worker(django_db_setup, django_db_blocker):
    w = Worker(queues=TOY_QUEUE, env={"LLMWEB_EXTRA_JOB_KINDS": __name__})
    try:
        yield w.wait_ready()
    finally:
        w.stop()


def kinds_of_events(job_id: int) -> list[str]:
    return list(
        JobEvent.objects.filter(job_id=job_id).order_by("seq").values_list("kind", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_a_kind_from_one_module_runs_on_the_real_worker(count_kind, count_worker, alice, team):
    job = services.job_submit(user=alice, team=team, job_type="test-count", params={"steps": 4})
    assert job.queue == TOY_QUEUE and job.status == "queued"
    job = wait_job_status(job.pk)
    assert job.status == "succeeded", (job.error, count_worker.output()[-3000:])
    assert job.metrics == {"counted": 4, "dataset_rows": 0, "finished_by": "test-count"}
    assert job.result_model is None
    steps = [
        e.data["step"] for e in JobEvent.objects.filter(job=job, kind="progress").order_by("seq")
    ]
    assert steps == [1, 2, 3, 4]
    statuses = [
        e.data["status"] for e in JobEvent.objects.filter(job=job, kind="status").order_by("seq")
    ]
    assert statuses == ["validating", "queued", "running", "succeeded"]
    running = JobEvent.objects.get(job=job, kind="status", data__status="running")
    assert running.data["attempts"] == 1  # a value, never an ORM expression


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_custom_kind_in_the_worker(count_kind, count_worker, alice, team):
    job = services.job_submit(
        user=alice, team=team, job_type="test-count", params={"steps": 2000, "delay": 0.02}
    )
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, step__gte=3).exists(),
        timeout=60,
        interval=0.1,
        what="three steps",
    )
    services.job_cancel(user=alice, job=Job.objects.get(pk=job.pk))
    job = wait_job_status(job.pk)
    assert job.status == "cancelled"
    counted = JobEvent.objects.filter(job=job, kind="progress").count()
    assert 3 <= counted < 2000


@pytest.mark.django_db(transaction=True)
def test_engine_errors_and_crashes_map_to_the_job_record(count_kind, count_worker, alice, team):
    refused = services.job_submit(
        user=alice, team=team, job_type="test-count", params={"steps": 5, "fail_at": 2}
    )
    crashed = services.job_submit(
        user=alice, team=team, job_type="test-count", params={"steps": 5, "crash_at": 1}
    )
    refused, crashed = wait_job_status(refused.pk), wait_job_status(crashed.pk)
    assert refused.status == "failed"
    assert refused.error == {
        "code": "count_refused",
        "message": "refused at step 2",
        "param": "fail_at",
    }
    assert refused.error_traceback == ""
    assert crashed.status == "failed" and crashed.error["code"] == "internal_error"
    assert "ZeroDivisionError" in crashed.error["message"]
    assert "ZeroDivisionError" in crashed.error_traceback
    assert kinds_of_events(crashed.pk)[-1] == "status"


@pytest.mark.django_db
def test_preflight_reads_the_kinds_table(count_kind, alice, team):
    with pytest.raises(JobError) as bad:
        services.job_submit(user=alice, team=team, job_type="test-count", params={"steps": 0})
    assert bad.value.param == "steps" and "at least 1" in bad.value.message
    with pytest.raises(JobError) as unknown:
        services.job_submit(user=alice, team=team, job_type="test-count", params={"step": 3})
    assert unknown.value.code == "unknown_param" and unknown.value.param == "step"
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_job_kinds_api_lists_inputs_and_parameter_schemas(count_kind, api, alice):
    r = api(alice).get("/api/v1/job-kinds/")
    assert r.status_code == 200
    kinds = {k["name"]: k for k in r.json()}
    assert {"finetune", "pretrain", "test-count"} <= set(kinds)
    finetune = kinds["finetune"]
    assert [(i["name"], i["type"], i["role"], i["required"]) for i in finetune["inputs"]] == [
        ("base_model", "model", "base", True),
        ("dataset", "dataset", "train", True),
    ]
    assert finetune["params"]["learning_rate"]["min"] == 0.0
    assert finetune["produces"] == "model" and finetune["queue"] == "gpu"
    count = kinds["test-count"]
    assert count["queue"] == TOY_QUEUE
    assert count["params"]["steps"] == {
        "type": "int",
        "default": 5,
        "help": "How many steps to count.",
        "min": 1,
        "max": 10_000,
        "basic": True,
    }


@pytest.mark.django_db
def test_new_job_page_offers_every_kind_with_its_fields(count_kind, client, alice, team):
    client.force_login(alice)
    html = client.get("/jobs/new/").content.decode()
    assert 'value="test-count"' in html and 'value="finetune"' in html
    assert 'name="p_steps"' in html and 'data-kinds="test-count"' in html
    # The shared dataset input names every kind that reads it (in registration order).
    shared = re.search(r'<p data-kinds="([^"]+)"><label for="id_dataset"', html)
    assert shared and {"finetune", "pretrain", "test-count"} <= set(shared.group(1).split())
