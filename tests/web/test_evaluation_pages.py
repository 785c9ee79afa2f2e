"""Evaluation pages without a browser: the model page lists evaluations, the evaluation
page draws the confusion matrix and filters samples by a cell, compare marks the best."""

from __future__ import annotations

import json

import pytest

from llmweb.catalog.models import RegisteredModel
from llmweb.evaluations.services import evaluation_record
from tests.factories import (
    evaluation_with_samples,
    generations,
    job_record,
    ready_dataset,
    sms_rows,
    training_history,
)

pytestmark = pytest.mark.django_db

ROWS = [
    {"i": 0, "input": "win cash now", "true": "spam", "pred": "ham", "loss": 2.5, "correct": False},
    {"i": 1, "input": "hi mum", "true": "ham", "pred": "ham", "loss": 0.1, "correct": True},
    {"i": 2, "input": "free prize", "true": "spam", "pred": "spam", "loss": 0.3, "correct": True},
]


@pytest.fixture
def as_alice(client, alice, team):
    client.force_login(alice)
    return client


def scored(team, name, dataset, *, accuracy, latency, tmp_path, settings):
    settings.STORAGE_DIR = tmp_path
    model = RegisteredModel.objects.create(
        team=team,
        name=name,
        source="upload",
        status="ready",
        task="classification",
        label_names=["ham", "spam"],
    )
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS), encoding="utf-8")
    evaluation = evaluation_record(
        job=None,
        model=model,
        dataset=dataset,
        split="test",
        measure="classification",
        metrics={
            "accuracy": accuracy,
            "macro_f1": 0.5,
            "ece": 0.1,
            "labels": ["ham", "spam"],
            "confusion_matrix": [[1, 0], [1, 1]],
            "per_class": {"ham": {"precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 1}},
        },
        signatures={"classification": "sklearn:1.9|ece:bins=10"},
        device="cpu",
        speed={"latency_p50_ms": latency, "latency_p95_ms": latency},
        samples_path=path,
        num_samples=3,
    )
    return model, evaluation


def test_model_page_lists_its_evaluations_with_signature(as_alice, team, tmp_path, settings):
    sms = ready_dataset(team, "classification", sms_rows(30), name="sms")
    model, evaluation = scored(
        team, "a", sms, accuracy=0.9, latency=2, tmp_path=tmp_path, settings=settings
    )

    html = as_alice.get(f"/models/{model.pk}/").content.decode()

    assert f'data-evaluation="{evaluation.pk}"' in html
    assert "sklearn:1.9" in html and "accuracy 0.9000" in html


def test_a_confusion_cell_filters_the_samples(as_alice, team, tmp_path, settings):
    sms = ready_dataset(team, "classification", sms_rows(30), name="sms")
    _, evaluation = scored(
        team, "a", sms, accuracy=0.9, latency=2, tmp_path=tmp_path, settings=settings
    )

    html = as_alice.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="confusion"' in html and "?true=spam&amp;pred=ham#samples" in html
    assert html.index("win cash now") < html.index("free prize") < html.index("hi mum")

    html = as_alice.get(f"/evaluations/{evaluation.pk}/?true=spam&pred=ham").content.decode()
    assert "win cash now" in html and "hi mum" not in html and "free prize" not in html
    assert 'id="samples-filter"' in html
    download = as_alice.get(f"/evaluations/{evaluation.pk}/samples.jsonl")
    assert download.status_code == 200 and b"hi mum" in b"".join(download.streaming_content)


def test_compare_page_marks_the_best_and_draws_the_pareto_front(as_alice, team, tmp_path, settings):
    sms = ready_dataset(team, "classification", sms_rows(30), name="sms")
    fast, e1 = scored(
        team, "fast", sms, accuracy=0.8, latency=1, tmp_path=tmp_path, settings=settings
    )
    good, e2 = scored(
        team, "good", sms, accuracy=0.95, latency=4, tmp_path=tmp_path, settings=settings
    )

    html = as_alice.get(f"/compare/?models={fast.pk},{good.pk}&dataset={sms.pk}").content.decode()

    assert 'id="compare-table"' in html and 'id="scatter"' in html and 'id="pareto-front"' in html
    assert html.count('class="point pareto"') == 2
    assert '<td class="best" data-key="accuracy">0.9500</td>' in html
    assert '<td class="best" data-key="latency_p50_ms">1.00</td>' in html


def test_compare_page_embeds_the_curves_and_shows_outputs_side_by_side(as_alice, team):
    pairs = [{"source": f"hello {i}", "target": f"bonjour {i}"} for i in range(300)]
    data = ready_dataset(team, "seq2seq", pairs, name="pairs")
    test_rows = pairs[-data.num_rows["test"] :]
    inputs, refs = [p["source"] for p in test_rows], [p["target"] for p in test_rows]
    models = []
    for name, said in (("base", "hi"), ("tuned", "<b>bonjour</b>")):
        model = RegisteredModel.objects.create(
            team=team, name=name, source="upload", status="ready", task="seq2seq"
        )
        evaluation_with_samples(
            model=model,
            dataset=data,
            measure="generation",
            metrics={"bleu": 1.0},
            rows=generations([said] * len(inputs), refs=refs, inputs=inputs),
        )
        models.append(model)
    models[1].job = job_record(team=team, base_model=models[0], dataset=data)
    models[1].save()
    training_history(models[1].job, [3.0, 2.0], {2: 2.5})
    url = f"/compare/?models={models[0].pk},{models[1].pk}&dataset={data.pk}"

    html = as_alice.get(url).content.decode()

    curves = json.loads(html.split('id="curves-data" type="application/json">')[1].split("<")[0])
    assert curves == [
        {
            "model": models[1].pk,
            "label": "tuned v1",
            "points": [
                {"step": 1, "epoch": 0.1, "loss": 3.0, "eval_loss": None},
                {"step": 2, "epoch": 0.2, "loss": 2.0, "eval_loss": 2.5},
            ],
        }
    ]
    assert 'id="curves-chart"' in html
    assert html.count('class="output-row"') == 20
    assert f'<td class="output-input">{inputs[0]}</td>' in html
    assert "&lt;b&gt;bonjour&lt;/b&gt;" in html  # generated text is escaped
    more = html.split('id="more-outputs"')[0].rsplit('href="', 1)[1].split('"')[0]
    assert "outputs=40" in more
    html = as_alice.get("/compare/" + more.replace("&amp;", "&").split("#")[0]).content.decode()
    assert html.count('class="output-row"') == len(inputs) == 30
    assert 'id="more-outputs"' not in html


def test_other_teams_cannot_see_an_evaluation(client, charlie, team, tmp_path, settings):
    sms = ready_dataset(team, "classification", sms_rows(30), name="sms")
    _, evaluation = scored(
        team, "a", sms, accuracy=0.9, latency=2, tmp_path=tmp_path, settings=settings
    )
    client.force_login(charlie)

    assert client.get(f"/evaluations/{evaluation.pk}/").status_code == 404
    assert client.get(f"/evaluations/{evaluation.pk}/samples.jsonl").status_code == 404
    assert "compare-table" not in client.get(f"/compare/?dataset={sms.pk}").content.decode()


def test_job_page_links_the_evaluations_it_wrote(as_alice, team, tmp_path, settings):
    sms = ready_dataset(team, "classification", sms_rows(30), name="sms")
    model, evaluation = scored(
        team, "a", sms, accuracy=0.9, latency=2, tmp_path=tmp_path, settings=settings
    )
    job = job_record(team=team, base_model=model, type="evaluate")
    evaluation.job = job
    evaluation.save()

    html = as_alice.get(f"/jobs/{job.pk}/").content.decode()

    assert 'id="evaluation-links"' in html and f"/evaluations/{evaluation.pk}/" in html


def test_the_rescore_form_adds_a_metric_to_the_page(as_alice, team, tmp_path, settings):
    sms = ready_dataset(team, "classification", sms_rows(30), name="sms")
    _, evaluation = scored(
        team, "a", sms, accuracy=0.9, latency=2, tmp_path=tmp_path, settings=settings
    )
    assert 'id="rescore-form"' in as_alice.get(f"/evaluations/{evaluation.pk}/").content.decode()

    r = as_alice.post(f"/evaluations/{evaluation.pk}/rescore/", {"metric": "balanced_accuracy"})

    assert r.status_code == 302
    html = as_alice.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="rescored"' in html and "balanced_accuracy" in html
