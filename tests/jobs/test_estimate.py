"""The time estimate learns from finished jobs: the second similar job is estimated from
the first one's measured speed, and lands within 2x of what it really takes."""

from __future__ import annotations

import pytest

from tests.factories import bundled_model, ready_dataset, sms_rows
from tests.support import wait_job_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
PARAMS = {"max_steps": 8, "batch_size": 8, "max_length": 48, "learning_rate": 1e-4}


def test_second_job_is_estimated_from_the_first_within_2x(worker, api, alice, team):
    sms = ready_dataset(team, "classification", sms_rows(120), name="sms")
    body = {"base_model": bundled_model(team).id, "dataset": sms.id, "params": PARAMS}
    client = api(alice)
    rough = client.post("/api/v1/jobs/estimate/", body, format="json").json()["estimate"]
    assert rough["source"].startswith("rough") and "by_device" not in rough

    first = client.post("/api/v1/jobs/", body, format="json").json()
    first = wait_job_status(first["id"], timeout=240)
    assert first.status == "succeeded", (first.error, worker.output()[-2000:])

    calibrated = client.post("/api/v1/jobs/estimate/", body, format="json").json()["estimate"]
    assert calibrated["source"].startswith("measured")
    device = first.device.split(" ", 1)[0] if first.device.startswith("cpu") else first.device
    predicted = calibrated["by_device"][device]["seconds"]

    second = wait_job_status(
        client.post("/api/v1/jobs/", body, format="json").json()["id"], timeout=240
    )
    actual = second.duration_seconds
    assert second.status == "succeeded" and actual
    assert actual / 2 <= predicted <= actual * 2, (predicted, actual, calibrated)
