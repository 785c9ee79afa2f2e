"""The model page shows a compression or distillation report and offers "Make it smaller"."""

from __future__ import annotations

import re

import pytest

from llmweb.catalog.models import Dataset, RegisteredModel

FIGURES = {"parameters": 22_700_000, "size_bytes": 90_000_000}
REPORT = {
    "kind": "compress",
    "backend": "torch.ao.quantization.quantize_dynamic",
    "device": "cpu",
    "eval": {"split": "test", "rows": 557},
    "before": {
        **FIGURES,
        "latency_ms_b1": 8.0,
        "latency_ms_b32": 120.0,
        "quality": {"accuracy": 0.98},
    },
    "after": {
        **FIGURES,
        "size_bytes": 24_000_000,
        "latency_ms_b1": 5.0,
        "latency_ms_b32": 30.0,
        "quality": {"accuracy": 0.975},
    },
    "ratios": {
        "size_ratio": 0.2667,
        "parameters_ratio": 1.0,
        "latency_ratio_b1": 0.625,
        "latency_ratio_b32": 0.25,
        "quality_retained": 0.9949,
        "quality_delta": -0.005,
    },
}


@pytest.fixture
def as_alice(client, alice, team):
    client.force_login(alice)
    return client


@pytest.fixture
def classifier(team):
    sms = Dataset.objects.create(
        team=team, name="sms", schema="classification", status="ready", original_filename="x"
    )
    return RegisteredModel.objects.create(
        team=team,
        name="spam-clf",
        source="job",
        status="ready",
        task="classification",
        dtype="float32",
        dataset=sms,
    )


@pytest.mark.django_db
def test_a_quantized_model_shows_its_report_and_the_edge_kind(as_alice, team, classifier):
    int8 = RegisteredModel.objects.create(
        team=team,
        name="spam-clf-int8",
        source="job",
        status="ready",
        task="classification",
        dtype="int8",
        parent=classifier,
        lineage_edge="quantized from",
        report=REPORT,
    )
    html = as_alice.get(f"/models/{int8.pk}/").content.decode()
    assert "Compression report" in html and 'id="report-table"' in html
    assert re.search(r'data-key="size_ratio">.*?0\.27×', html, re.S)
    assert re.search(r'data-key="latency_ratio_b32">.*?0\.25×', html, re.S)
    assert re.search(r'data-key="quality_retained">.*?97\.50%.*?99\.5%', html, re.S)
    assert "quantized from" in html  # the lineage arrow says how
    assert 'id="make-smaller"' not in html  # already int8


@pytest.mark.django_db
def test_make_it_smaller_opens_the_new_job_form_prefilled(as_alice, classifier):
    html = as_alice.get(f"/models/{classifier.pk}/").content.decode()
    links = re.findall(r'<a href="(/jobs/new/\?[^"]+)" data-kind="([\w-]+)"', html)
    assert [kind for _, kind in links] == ["distill", "compress", "distill-compress"]
    assert links[1][0] == (
        f"/jobs/new/?type=compress&amp;source_model={classifier.pk}"
        f"&amp;eval_dataset={classifier.dataset_id}"
    )
    form = as_alice.get(links[1][0].replace("&amp;", "&")).content.decode()
    assert re.search(r'<option value="compress" selected>', form)
    select = re.search(r'<select name="source_model".*?</select>', form, re.S).group(0)
    assert re.search(rf'<option value="{classifier.pk}" selected>', select)
    select = re.search(r'<select name="eval_dataset".*?</select>', form, re.S).group(0)
    assert re.search(rf'<option value="{classifier.dataset_id}" selected>', select)
    distill = as_alice.get(links[0][0].replace("&amp;", "&")).content.decode()
    select = re.search(r'<select name="teacher_model".*?</select>', distill, re.S).group(0)
    assert re.search(rf'<option value="{classifier.pk}" selected>', select)


@pytest.mark.django_db
def test_distill_then_quantize_opens_the_distill_form_with_its_then_section(as_alice, classifier):
    html = as_alice.get(f"/models/{classifier.pk}/").content.decode()
    url = re.search(r'<a href="(/jobs/new/\?[^"]+)" data-kind="distill-compress"', html).group(1)
    form = as_alice.get(url.replace("&amp;", "&")).content.decode()
    assert re.search(r'<option value="distill" selected>', form)
    then = re.search(r'<fieldset id="then-section".*?</fieldset>', form, re.S).group(0)
    assert 'data-kinds="finetune pretrain compress distill"' in then  # kinds that make models
    assert re.search(r'<option value="compress" selected>Compress \(int8\) the result', then)
    select = re.search(r'<select name="then_in_eval_dataset".*?</select>', then, re.S).group(0)
    assert re.search(rf'<option value="{classifier.dataset_id}" selected>', select)
    # compress's parameter table, with its defaults shown
    assert re.search(r'name="then_p_eval_rows" value="500"', then)
    assert re.search(r'<option value="dynamic-int8" selected>', then)
    assert re.search(r'name="then_p_quantize_embeddings"[^>]*checked', then)
