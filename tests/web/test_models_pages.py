"""Model pages: list, detail (safe card, lineage), forms, roles and scoping."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import JobStatus
from llmweb.accounts import services as accounts
from llmweb.accounts.models import Role
from llmweb.catalog.models import Dataset, RegisteredModel
from tests.factories import job_record


@pytest.fixture
def as_alice(client, alice, team):
    client.force_login(alice)
    return client


def _model(team, name="tiny", **kw) -> RegisteredModel:
    kw.setdefault("source", "upload")
    kw.setdefault("status", "ready")
    return RegisteredModel.objects.create(team=team, name=name, **kw)


def test_list_shows_the_bundled_model_and_the_ways_to_add_one(as_alice, settings):
    settings.LLMWEB_ALLOW_HUB = False
    html = as_alice.get("/models/").content.decode()
    assert "all-MiniLM-L6-v2" in html and 'class="badge ready"' in html
    assert "New from preset" in html and "Upload" in html
    assert "From the hub" not in html


def test_list_filters_by_source_and_sorts_by_a_metric(as_alice, team):
    _model(team, "low", source="job", metrics={"accuracy": 0.5})
    _model(team, "high", source="job", metrics={"accuracy": 0.9})
    html = as_alice.get("/models/?source=job&sort=-metric:accuracy").content.decode()
    assert "all-MiniLM" not in html
    assert html.index("high v1") < html.index("low v1")
    assert "accuracy (high first)" in html


def test_detail_renders_the_card_without_letting_markup_through(as_alice, team):
    card = (
        "---\nlibrary_name: transformers\n---\n# Spam filter\n\n<script>alert(1)</script>\n\n"
        "| metric | value |\n|---|---|\n| accuracy | 0.98 |\n\n- one\n- two\n\n"
        "[click](javascript:alert(2)) ![img](http://evil.example/x.png)\n\n```\ncode <b>\n```\n"
    )
    m = _model(team, card=card)
    html = as_alice.get(f"/models/{m.pk}/").content.decode()
    body = html.split('id="model-card">', 1)[1].split("</div>", 1)[0]
    assert "<h1>Spam filter</h1>" in body and "<table>" in body and "<li>one</li>" in body
    assert "&lt;script&gt;" in body and "<script>" not in body
    assert "javascript:" not in body.replace("[click](javascript:alert(2))", "")
    assert "<img" not in body and "code &lt;b&gt;" in body
    assert "library_name" not in body


def test_detail_draws_the_lineage_with_dataset_and_job_on_the_edge(as_alice, team):
    base = RegisteredModel.objects.get(team=team, source="bundled")
    ds = Dataset.objects.create(
        team=team, name="sms", schema="classification", status="ready", original_filename="sms.tsv"
    )
    job = job_record(team=team, base_model=base, dataset=ds, status=JobStatus.SUCCEEDED)
    child = _model(team, "spam", source="job", parent=base, dataset=ds, job=job)
    html = as_alice.get(f"/models/{child.pk}/").content.decode()
    svg = html.split('<svg class="lineage"', 1)[1].split("</svg>", 1)[0]
    assert f'data-model="{base.pk}"' in svg and f'data-model="{child.pk}"' in svg
    assert f"sms v1 · #{job.pk} finetune" in svg


def test_preset_form_shows_counts_and_says_weights_are_random(as_alice, team):
    html = as_alice.get("/models/new/preset/").content.decode()
    assert "weights are random until a pretrain job trains them" in html
    assert 'data-preset="gpt2-tiny"' in html and "953856" in html  # gpt2-tiny at 4096 tokens


def test_preset_form_creates_a_pending_model(as_alice, team):
    ds = Dataset.objects.create(
        team=team, name="corpus", schema="causal-lm", status="ready", original_filename="a.txt"
    )
    r = as_alice.post(
        "/models/new/preset/",
        {
            "family": "gpt2",
            "size": "tiny",
            "name": "",
            "tokenizer": f"dataset:{ds.pk}",
            "vocab_size": 500,
        },
    )
    m = RegisteredModel.objects.get(source="preset")
    assert r.status_code == 302 and r["Location"] == f"/models/{m.pk}/"
    assert (m.name, m.status, m.preset["vocab_size"]) == ("gpt2-tiny", "pending", 500)
    html = as_alice.get(f"/models/{m.pk}/").content.decode()
    assert "badge pending" in html and "setTimeout(tick, 2000)" in html


def test_upload_fallback_explains_a_refused_file(as_alice):
    r = as_alice.post(
        "/models/new/upload/", {"file": SimpleUploadedFile("w.pt", b"\x80\x04"), "name": ""}
    )
    assert r.status_code == 400 and "not a .zip, .tar.gz or .tgz" in r.content.decode()
    assert "upload.onprogress" in as_alice.get("/models/new/upload/").content.decode()


def test_hub_form_exists_only_when_the_hub_is_allowed(as_alice, settings):
    settings.LLMWEB_ALLOW_HUB = False
    assert as_alice.get("/models/new/hub/").status_code == 404
    settings.LLMWEB_ALLOW_HUB = True
    assert as_alice.get("/models/new/hub/").status_code == 200
    assert "From the hub" in as_alice.get("/models/").content.decode()


def test_card_edit_and_refused_delete_say_what_happened(as_alice, team):
    m = _model(team)
    r = as_alice.post(f"/models/{m.pk}/card/", {"card": "# New card"}, follow=True)
    assert "Model card saved." in r.content.decode()
    m.refresh_from_db()
    assert m.card == "# New card"
    job = job_record(team=team, base_model=m, status=JobStatus.QUEUED)
    r = as_alice.post(f"/models/{m.pk}/delete/", follow=True)
    assert f"#{job.pk} (queued)" in r.content.decode()
    assert RegisteredModel.objects.filter(pk=m.pk).exists()


def test_viewers_see_no_write_buttons_and_get_403_on_forms(client, team, alice, charlie):
    accounts.team_invite(by=alice, team=team, username="charlie", role=Role.VIEWER)
    client.force_login(charlie)
    client.post("/teams/switch/", {"team_id": team.pk})
    m = _model(team)
    assert "New from preset" not in client.get("/models/").content.decode()
    assert 'id="delete-form"' not in client.get(f"/models/{m.pk}/").content.decode()
    assert client.get("/models/new/preset/").status_code == 403
    assert client.get("/models/new/upload/").status_code == 403
    assert client.post(f"/models/{m.pk}/delete/").status_code == 403
    assert client.post(f"/models/{m.pk}/card/", {"card": "x"}).status_code == 403


def test_another_teams_model_page_is_404(client, team, charlie, charlie_team):
    m = _model(team)
    client.force_login(charlie)
    assert client.get(f"/models/{m.pk}/").status_code == 404
    assert client.post(f"/models/{m.pk}/delete/").status_code == 404
