"""schemathesis against /api/schema/ on the real server: no 5xx, responses match the schema.

Every operation of the schema is fuzzed as an authenticated owner of a team with a ready
dataset, the bundled model and a job, so ids in paths hit real objects as well as random
ones. The server runs with rate limits raised: the throttles have their own tests.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from llmweb.accounts import services
from tests.factories import bundled_model, job_record, ready_dataset, sms_rows
from tests.support import LiveServer

EXAMPLES = 25
BUDGET_SECONDS = 170
# Mismatches found here whose fix belongs to other work in progress; each names where.
# A failure that is only one of these is reported, not failed; anything else fails.
KNOWN_GAPS: dict[str, str] = {}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_no_operation_answers_5xx_or_breaks_its_schema(alice, team):
    _, secret = services.api_token_create(user=alice, name="fuzz")
    dataset = ready_dataset(team, "classification", sms_rows(40))
    job_record(team=team, base_model=bundled_model(team), dataset=dataset)
    server = LiveServer(
        env={
            "LLMWEB_API_RATE": "100000/min",
            "LLMWEB_TOKEN_FAILURES_PER_MINUTE": "100000",
            "LLMWEB_MAX_TEAMS_PER_USER": "100000",
            "LLMWEB_MAX_TOKENS_PER_USER": "100000",
        }
    )
    try:
        schema = schemathesis.openapi.from_url(server.url + "/api/schema/")
        headers = {"Authorization": f"Bearer {secret}"}
        started = time.monotonic()
        failures: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 20
        for operation in operations:
            if time.monotonic() - started > BUDGET_SECONDS:
                pytest.fail(f"over the time budget before {operation.label}")

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def fuzz(case):
                response = case.call(base_url=server.url, headers=headers, timeout=30)
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )

            try:
                fuzz()
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect them all
                text = str(exc)
                gap = next((k for k in KNOWN_GAPS if k in text), None)
                if gap and "found 1 distinct failure" in text:
                    print(f"known gap in {operation.label}: {KNOWN_GAPS[gap]}")
                    continue
                failures.append(f"{operation.label}: {text[:1500]}")
        print(f"{len(operations)} operations in {time.monotonic() - started:.0f} s")
        assert not failures, "\n\n".join(failures)
    finally:
        server.stop()
