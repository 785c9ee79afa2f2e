"""Hostile input never answers 5xx, and every API error is JSON with a `detail`."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.factories import csv_bytes
from tests.support import post_dataset

BIG = "99999999999999999999"  # 20 digits: past a 64-bit id


def assert_json_error(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.content[:300])
    assert r["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    return body


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["patch", "delete"])
def test_a_20_digit_member_id_is_a_404(api, alice, team, method):
    r = getattr(api(alice), method)(
        f"/api/v1/teams/{team.id}/members/{BIG}/", {"role": "viewer"}, format="json"
    )
    assert_json_error(r, 404)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", [f"/api/v1/datasets/{BIG}/", f"/api/v1/models/{BIG}/", f"/api/v1/teams/{BIG}/"]
)
def test_a_20_digit_object_id_is_a_404(api, alice, team, path):
    assert_json_error(api(alice).get(path), 404)


@pytest.mark.django_db
def test_a_20_digit_id_in_a_page_url_is_a_404(client, alice):
    client.force_login(alice)
    assert client.get(f"/datasets/{BIG}/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("field, value", [("seed", BIG), ("seed", "-1"), ("team", BIG)])
def test_integer_fields_of_an_upload_are_bounded(api, alice, team, field, value):
    r = post_dataset(api(alice), "sms.csv", csv_bytes(10), **{field: value})
    assert field in assert_json_error(r, 400)["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["[]", '["preset"]', '"preset"', "null", "42"])
@pytest.mark.parametrize("path", ["/api/v1/models/", "/api/v1/teams/", "/api/v1/tokens/"])
def test_json_that_is_not_an_object_is_a_400(api, alice, team, body, path):
    r = api(alice).post(path, body, content_type="application/json")
    assert "JSON object" in assert_json_error(r, 400)["detail"]


@pytest.mark.django_db
def test_django_level_errors_under_api_are_json(client, alice, settings):
    client.force_login(alice)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = json.dumps({"name": "x" * 2000})
    assert_json_error(client.post("/api/v1/teams/", big, content_type="application/json"), 413)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
    broken = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
    r = client.generic(
        "POST", "/api/v1/datasets/", broken, content_type="multipart/form-data; boundary="
    )
    assert_json_error(r, 400)
    assert_json_error(client.get("/api/v1/no-such-thing/"), 404)
    # Pages keep their HTML errors.
    assert "html" in Client().get("/no-such-page/")["Content-Type"]
