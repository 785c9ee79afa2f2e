from __future__ import annotations

import httpx

from llmweb.api.errors import exception_handler
from llmweb.catalog.services.common import UploadTooLarge
from llmweb.core.errors import Conflict, DomainError
from tests.support import LiveServer


def test_a_domain_error_becomes_detail_code_and_param():
    r = exception_handler(DomainError("Give the dataset a name.", param="name"), {})
    assert r.status_code == 400
    assert r.data == {"detail": "Give the dataset a name.", "code": "invalid", "param": "name"}


def test_a_conflict_answers_409_with_its_code():
    r = exception_handler(Conflict("Jobs #3 used it.", code="dataset_in_use"), {})
    assert (r.status_code, r.data["code"], r.data["param"]) == (409, "dataset_in_use", None)


def test_an_upload_over_the_limit_answers_413_naming_the_file():
    r = exception_handler(UploadTooLarge(3 << 20, 1 << 20), {})
    assert (r.status_code, r.data["code"], r.data["param"]) == (413, "file_too_large", "file")
    assert "LLMWEB_MAX_UPLOAD_BYTES" in r.data["detail"]


def test_an_unreachable_database_answers_503_json_with_retry_after(tmp_path):
    """Found under load (PostgreSQL out of connections): a refused connection was a 500.
    The request did nothing, so it is a 503 a client may retry, in the API's JSON shape."""
    missing = tmp_path / "no-such-folder" / "db.sqlite3"  # sqlite cannot open it: a real refusal
    server = LiveServer(env={"DATABASE_URL": f"sqlite:///{missing}"})
    try:
        token = {"Authorization": "Bearer llmw_" + "x" * 43}  # looked up: needs the database
        r = httpx.get(server.url + "/api/v1/datasets/", headers=token, timeout=30)
        assert r.status_code == 503, (r.status_code, r.text[:300])
        assert "database" in r.json()["detail"] and r.headers["Retry-After"] == "5"
    finally:
        server.stop()
