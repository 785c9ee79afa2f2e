from __future__ import annotations

from llmweb.api.errors import exception_handler
from llmweb.catalog.services.common import UploadTooLarge
from llmweb.core.errors import Conflict, DomainError


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
