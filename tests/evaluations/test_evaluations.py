"""Evaluation records: pre-flight of the evaluate kind, the records, samples, comparison,
and the API, all team-scoped (alice owns, bob is on her team, charlie has no access)."""

from __future__ import annotations

import json

import pytest

from jobs import services as job_services
from jobs.errors import JobError
from jobs.models import Job
from llmweb.evaluations.comparison import comparison_table, pareto_front, training_curve
from llmweb.evaluations.models import Evaluation
from llmweb.evaluations.services import evaluation_record, evaluation_record_from_training
from tests.factories import (
    evaluation_with_samples,
    generations,
    job_history,
    job_record,
    ready_dataset,
    sms_rows,
    training_history,
)

SAMPLES = [
    {"i": 0, "input": "win cash", "true": "spam", "pred": "ham", "loss": 2.5, "correct": False},
    {"i": 1, "input": "hi mum", "true": "ham", "pred": "ham", "loss": 0.1, "correct": True},
    {"i": 2, "input": "free prize", "true": "spam", "pred": "spam", "loss": 0.3, "correct": True},
    {"i": 3, "input": "call me", "true": "ham", "pred": "spam", "loss": 1.7, "correct": False},
]


@pytest.fixture
def sms(team):
    return ready_dataset(team, "classification", sms_rows(30), name="sms")


def make_model(team, name, *, task="classification", labels=("ham", "spam")):
    from llmweb.catalog.models import RegisteredModel

    return RegisteredModel.objects.create(
        team=team,
        name=name,
        source="upload",
        status="ready",
        task=task,
        label_names=list(labels) if labels else None,
    )


def make_evaluation(model, dataset, *, accuracy, latency, samples=None, tmp_path=None):
    path = None
    if samples is not None:
        path = tmp_path / f"samples-{model.pk}.jsonl"
        path.write_text("\n".join(json.dumps(s) for s in samples) + "\n", encoding="utf-8")
    return evaluation_record(
        job=None,
        model=model,
        dataset=dataset,
        split="test",
        measure="classification",
        metrics={"accuracy": accuracy, "macro_f1": accuracy - 0.1, "ece": 0.05},
        signatures={"classification": "sklearn:1.9"},
        device="cpu",
        speed={"latency_p50_ms": latency, "latency_p95_ms": latency * 1.5},
        samples_path=path,
        num_samples=len(samples or []),
    )


# --- pre-flight ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_label_set_mismatch_is_a_400_naming_the_labels(api, alice, team, sms):
    other = make_model(team, "sentiment", labels=("neg", "pos"))

    r = api(alice).post(
        "/api/v1/evaluations/", {"models": [other.pk], "dataset": sms.pk}, format="json"
    )

    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "label_mismatch" and body["param"] == "models"
    assert "neg" in body["detail"] and "spam" in body["detail"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_model_of_another_task_is_refused(alice, team, sms):
    lm = make_model(team, "gpt", task="causal-lm", labels=None)

    with pytest.raises(JobError) as refused:
        job_services.job_submit(
            user=alice,
            team=team,
            job_type="evaluate",
            inputs={"models": [lm], "dataset": sms},
            params={},
        )
    assert refused.value.code == "task_mismatch" and refused.value.param == "models"


@pytest.mark.django_db
def test_more_than_six_models_are_refused(alice, team, sms):
    models = [make_model(team, f"m{i}") for i in range(7)]

    with pytest.raises(JobError) as refused:
        job_services.job_submit(
            user=alice,
            team=team,
            job_type="evaluate",
            inputs={"models": models, "dataset": sms},
            params={},
        )
    assert refused.value.param == "models"


@pytest.mark.django_db
def test_an_empty_split_is_refused_by_name(alice, team, sms):
    sms.num_rows = {"train": 24, "validation": 3, "test": 0}
    sms.save()

    with pytest.raises(JobError) as refused:
        job_services.job_submit(
            user=alice,
            team=team,
            job_type="evaluate",
            inputs={"models": [make_model(team, "a")], "dataset": sms},
            params={"split": "test"},
        )
    assert refused.value.param == "split" and "validation" in refused.value.message


@pytest.mark.django_db
def test_a_submission_is_an_evaluate_job_on_the_training_queue(api, alice, team, sms, settings):
    a, b = make_model(team, "a"), make_model(team, "b", labels=("spam", "ham"))

    r = api(alice).post(
        "/api/v1/evaluations/",
        {"models": [a.pk, b.pk], "dataset": sms.pk, "split": "validation"},
        format="json",
    )

    assert r.status_code == 202, r.json()
    job = Job.objects.get(pk=r.json()["id"])
    assert job.type == "evaluate" and job.queue == settings.LLMWEB_TRAIN_QUEUE
    assert job.eval_dataset == sms and job.dataset is None
    assert job.models_in_role("evaluated") == [a, b]
    assert job.params["split"] == "validation"


@pytest.mark.django_db
def test_models_of_another_team_read_as_missing(api, charlie, charlie_team, team, sms):
    theirs = make_model(team, "a")
    mine = ready_dataset(charlie_team, "classification", sms_rows(30), name="mine")

    r = api(charlie).post(
        "/api/v1/evaluations/", {"models": [theirs.pk], "dataset": mine.pk}, format="json"
    )

    assert r.status_code == 400 and r.json()["param"] == "models"


# --- records, samples, comparison -----------------------------------------------------------


@pytest.mark.django_db
def test_samples_sort_worst_first_and_filter_by_true_and_predicted_class(
    api, alice, bob, charlie, team, sms, tmp_path, settings
):
    settings.STORAGE_DIR = tmp_path
    model = make_model(team, "a")
    evaluation = make_evaluation(
        model, sms, accuracy=0.5, latency=3, samples=SAMPLES, tmp_path=tmp_path
    )
    assert evaluation.samples_path == f"samples-{model.pk}.jsonl"  # stored relative

    r = api(bob).get(f"/api/v1/evaluations/{evaluation.pk}/samples/")
    assert r.status_code == 200
    assert [row["i"] for row in r.json()["results"]] == [0, 3, 2, 1]
    r = api(bob).get(f"/api/v1/evaluations/{evaluation.pk}/samples/?true=spam&pred=ham")
    assert r.json()["count"] == 1 and r.json()["results"][0]["input"] == "win cash"
    r = api(bob).get(f"/api/v1/evaluations/{evaluation.pk}/samples/?ordering=loss&limit=1")
    assert r.json()["results"][0]["i"] == 1 and r.json()["next_offset"] == 1
    r = api(alice).get(f"/api/v1/evaluations/{evaluation.pk}/download/")
    assert r.status_code == 200 and b"win cash" in b"".join(r.streaming_content)
    assert api(charlie).get(f"/api/v1/evaluations/{evaluation.pk}/").status_code == 404
    assert api(charlie).get(f"/api/v1/evaluations/{evaluation.pk}/samples/").status_code == 404
    r = api(alice).get(f"/api/v1/evaluations/{evaluation.pk}/")
    assert r.json()["metrics"]["accuracy"] == 0.5 and r.json()["model"]["id"] == model.pk


@pytest.mark.django_db
def test_compare_marks_the_best_per_column_and_the_pareto_front(api, alice, charlie, team, sms):
    fast = make_model(team, "fast")
    good = make_model(team, "good")
    bad = make_model(team, "bad")
    make_evaluation(fast, sms, accuracy=0.90, latency=2)
    make_evaluation(good, sms, accuracy=0.97, latency=9)
    make_evaluation(bad, sms, accuracy=0.80, latency=5)  # slower and worse than fast

    r = api(alice).get(f"/api/v1/compare/?models={fast.pk},{good.pk},{bad.pk}&dataset={sms.pk}")

    assert r.status_code == 200
    body = r.json()
    ids = {row["model"]: row["id"] for row in body["evaluations"]}
    assert [row["model"] for row in body["evaluations"]] == [fast.pk, good.pk, bad.pk]
    assert body["best"]["accuracy"] == [ids[good.pk]]
    assert body["best"]["latency_p50_ms"] == [ids[fast.pk]]
    assert sorted(body["scatter"]["pareto"]) == sorted([ids[fast.pk], ids[good.pk]])
    assert body["scatter"]["quality"]["key"] == "accuracy"
    leaderboard = api(alice).get(f"/api/v1/compare/?dataset={sms.pk}").json()
    assert len(leaderboard["evaluations"]) == 3
    assert api(charlie).get(f"/api/v1/compare/?dataset={sms.pk}").json()["evaluations"] == []
    assert api(alice).get("/api/v1/compare/").status_code == 400


def test_a_resumed_run_drops_the_points_it_went_back_over_and_the_final_score():
    events = [
        ("progress", {"step": 1, "epoch": 0.5, "loss": 2.0}),
        ("progress", {"step": 2, "epoch": 1.0, "loss": 1.5}),
        ("metrics", {"step": 2, "split": "validation", "loss": 1.7}),
        ("progress", {"step": 3, "epoch": 1.5, "loss": 9.9}),  # lost with the worker
        ("resumed", {"from_step": 2}),
        ("progress", {"step": 3, "epoch": 1.5, "loss": 1.2}),
        ("progress", {"step": 4, "loss": None}),  # a non-finite loss is no point
        ("metrics", {"step": 4, "split": "validation", "loss": 1.1}),
        ("metrics", {"step": 4, "final": True, "loss": 0.4}),
    ]

    assert training_curve(events) == [
        {"step": 1, "epoch": 0.5, "loss": 2.0, "eval_loss": None},
        {"step": 2, "epoch": 1.0, "loss": 1.5, "eval_loss": 1.7},
        {"step": 3, "epoch": 1.5, "loss": 1.2, "eval_loss": None},
        {"step": 4, "epoch": 2.0, "loss": None, "eval_loss": 1.1},  # epoch from steps/epoch
    ]


def test_a_long_curve_is_thinned_keeping_its_ends_and_every_eval_point():
    events = [("progress", {"step": s, "loss": 1 / s}) for s in range(1, 5001)]
    events += [("metrics", {"step": s, "loss": 2 / s}) for s in range(100, 5001, 100)]

    curve = training_curve(events)

    assert len(curve) <= 500
    assert curve[0]["loss"] == 1.0 and curve[-1]["step"] == 5000
    assert [p["step"] for p in curve if p["eval_loss"] is not None] == list(range(100, 5001, 100))
    assert [p["step"] for p in curve] == sorted(p["step"] for p in curve)


@pytest.mark.django_db
def test_compare_overlays_training_curves_and_lays_generations_side_by_side(api, alice, team):
    pairs = [{"source": f"hello {i}", "target": f"bonjour {i}"} for i in range(30)]
    data = ready_dataset(team, "seq2seq", pairs, name="pairs")
    base = make_model(team, "t5", task="seq2seq", labels=None)
    tuned = make_model(team, "t5-tuned", task="seq2seq", labels=None)
    tuned.job = job_record(team=team, base_model=base, dataset=data)
    tuned.save()
    training_history(tuned.job, [3.0, 2.5, 2.0, 1.8], {2: 2.7, 4: 2.1})
    inputs, refs = ["hello 0", "hello 1", "hello 2"], ["bonjour 0", "bonjour 1", "bonjour 2"]
    scores = {"bleu": 10.0, "chrf": 20.0, "rouge1": 0.3}
    old = evaluation_with_samples(
        model=base,
        dataset=data,
        measure="generation",
        metrics=scores,
        rows=generations(["hi", "hi", "hi"], refs=refs, inputs=inputs),
    )
    new = evaluation_with_samples(
        model=tuned,
        dataset=data,
        measure="generation",
        metrics=scores,
        rows=generations(["bonjour 0", "salut", "bonjour 2"], refs=refs, inputs=inputs),
    )

    body = (
        api(alice)
        .get(f"/api/v1/compare/?models={base.pk},{tuned.pk}&dataset={data.pk}&outputs_limit=2")
        .json()
    )

    assert body["curves"] == {
        str(tuned.pk): [
            {"step": 1, "epoch": 0.1, "loss": 3.0, "eval_loss": None},
            {"step": 2, "epoch": 0.2, "loss": 2.5, "eval_loss": 2.7},
            {"step": 3, "epoch": 0.3, "loss": 2.0, "eval_loss": None},
            {"step": 4, "epoch": 0.4, "loss": 1.8, "eval_loss": 2.1},
        ]
    }
    outputs = body["outputs"]
    assert [c["evaluation"] for c in outputs["columns"]] == [old.pk, new.pk]
    assert outputs["total"] == 3 and outputs["next_offset"] == 2
    assert [(r["input"], r["reference"]) for r in outputs["rows"]] == list(
        zip(inputs, refs, strict=True)
    )[:2]
    assert [r["outputs"][str(new.pk)]["prediction"] for r in outputs["rows"]] == [
        "bonjour 0",
        "salut",
    ]
    assert outputs["rows"][0]["outputs"][str(new.pk)]["correct"] is True
    assert outputs["rows"][0]["outputs"][str(old.pk)] == {
        "prediction": "hi",
        "score": 10.0,
        "correct": False,
    }
    bad = api(alice).get(f"/api/v1/compare/?dataset={data.pk}&outputs_limit=0")
    assert bad.status_code == 400 and "outputs_limit" in bad.json()["detail"]


@pytest.mark.django_db
def test_a_long_runs_curve_keeps_its_ends_within_500_points(api, alice, team, sms):
    model = make_model(team, "long")
    model.job = job_record(team=team, base_model=model, dataset=sms)
    model.save()
    job_history(model.job, 3000)  # step i has loss 1/i
    make_evaluation(model, sms, accuracy=0.9, latency=1)

    body = api(alice).get(f"/api/v1/compare/?models={model.pk}&dataset={sms.pk}").json()

    curve = body["curves"][str(model.pk)]
    assert 400 <= len(curve) <= 500
    assert (curve[0]["step"], curve[-1]["step"]) == (1, 3000)
    assert all(p["loss"] == pytest.approx(1 / p["step"]) for p in curve)


def test_pareto_front_keeps_points_nothing_beats_on_both_axes():
    points = [(1.0, 0.8), (2.0, 0.9), (3.0, 0.85), (2.0, 0.9)]
    assert pareto_front(points, higher_is_better=True) == [0, 1, 3]
    # perplexity: lower is better
    assert pareto_front([(1.0, 30.0), (2.0, 20.0), (3.0, 25.0)], higher_is_better=False) == [0, 1]


def test_one_value_is_not_marked_best():
    rows = [{"id": 1, "measure": "classification", "metrics": {"accuracy": 0.9}, "speed": {}}]
    assert comparison_table(rows)["best"]["accuracy"] == []


@pytest.mark.django_db
def test_a_finetunes_final_metrics_become_an_evaluation_of_its_model(team, sms):
    base = make_model(team, "base")
    child = make_model(team, "child")
    job = job_record(team=team, base_model=base, dataset=sms)
    metrics = {
        "eval_loss": 0.2,
        "accuracy": 0.95,
        "macro_f1": 0.9,
        "split": "test",
        "labels": ["ham", "spam"],
        "confusion_matrix": [[5, 0], [1, 2]],
    }

    evaluation = evaluation_record_from_training(
        job=job, model=child, metrics=metrics, device="cpu"
    )

    assert evaluation.source == "finetune" and evaluation.model == child
    assert evaluation.dataset == sms and evaluation.split == "test"
    assert evaluation.measure == "classification" and evaluation.metrics["accuracy"] == 0.95
    assert "trainer.predict" in evaluation.signatures["finetune"]
    again = evaluation_record_from_training(job=job, model=child, metrics=metrics, device="cpu")
    assert again.pk == evaluation.pk and Evaluation.objects.count() == 1
    assert evaluation_record_from_training(job=job, model=child, metrics={}, device="cpu") is None


@pytest.mark.django_db
def test_saved_predictions_are_rescored_without_the_model(
    api, alice, charlie, team, sms, tmp_path, settings
):
    from sklearn.metrics import matthews_corrcoef

    settings.STORAGE_DIR = tmp_path
    model = make_model(team, "a")
    evaluation = make_evaluation(
        model, sms, accuracy=0.5, latency=3, samples=SAMPLES, tmp_path=tmp_path
    )
    evaluation.metrics = {**evaluation.metrics, "labels": ["ham", "spam"]}
    evaluation.save()

    r = api(alice).post(f"/api/v1/evaluations/{evaluation.pk}/rescore/", {"metric": "mcc"})

    assert r.status_code == 200, r.json()
    names = ["ham", "spam"]
    expected = matthews_corrcoef(
        [names.index(s["true"]) for s in SAMPLES], [names.index(s["pred"]) for s in SAMPLES]
    )
    assert r.json()["metrics"]["rescored"]["mcc"] == pytest.approx(expected)
    assert "matthews_corrcoef" in r.json()["signatures"]["rescored:mcc"]
    assert r.json()["metrics"]["accuracy"] == 0.5  # the original numbers stay
    assert "mcc" in r.json()["rescore_metrics"]
    bad = api(alice).post(f"/api/v1/evaluations/{evaluation.pk}/rescore/", {"metric": "bleu"})
    assert bad.status_code == 400 and bad.json()["param"] == "metric"
    hidden = api(charlie).post(f"/api/v1/evaluations/{evaluation.pk}/rescore/", {"metric": "mcc"})
    assert hidden.status_code == 404


@pytest.mark.django_db
def test_a_viewer_cannot_rescore(api, alice, team, sms, tmp_path, settings):
    from llmweb.accounts import services as accounts
    from llmweb.accounts.models import Role
    from tests.factories import make_user

    settings.STORAGE_DIR = tmp_path
    make_user("vera")
    accounts.team_invite(by=alice, team=team, username="vera", role=Role.VIEWER)
    evaluation = make_evaluation(
        make_model(team, "a"), sms, accuracy=0.5, latency=3, samples=SAMPLES, tmp_path=tmp_path
    )
    from django.contrib.auth import get_user_model

    vera = get_user_model().objects.get(username="vera")

    r = api(vera).post(f"/api/v1/evaluations/{evaluation.pk}/rescore/", {"metric": "accuracy"})

    assert r.status_code == 403


@pytest.mark.django_db
def test_jobs_api_takes_the_evaluate_kind_and_lists_its_inputs(api, alice, team, sms):
    a, b = make_model(team, "a"), make_model(team, "b")

    kinds = {k["name"]: k for k in api(alice).get("/api/v1/job-kinds/").json()}
    r = api(alice).post(
        "/api/v1/jobs/",
        {"type": "evaluate", "models": [a.pk, b.pk], "dataset": sms.pk, "params": {}},
        format="json",
    )

    evaluate = kinds["evaluate"]
    assert evaluate["produces"] == "evaluation"
    assert [(i["name"], i["role"], i["many"], i["max_items"]) for i in evaluate["inputs"]] == [
        ("models", "evaluated", True, 6),
        ("dataset", "eval", False, 1),
    ]
    assert evaluate["params"]["split"]["choices"] == ["auto", "test", "validation", "train", "all"]
    assert r.status_code == 201, r.json()
    assert [m["id"] for m in r.json()["models"]] == [a.pk, b.pk]
    assert r.json()["eval_dataset"]["id"] == sms.pk
