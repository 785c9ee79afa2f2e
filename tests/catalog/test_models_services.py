"""Model registry services without a worker: bundled model, versions, lineage, delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job, JobStatus
from llmweb.accounts import services as accounts
from llmweb.accounts.models import Role
from llmweb.catalog.model_selectors import model_lineage, model_list_filtered
from llmweb.catalog.models import Dataset, ModelSource, ModelStatus, RegisteredModel
from llmweb.catalog.services import models as services
from llmweb.catalog.services.common import create_versioned
from llmweb.catalog.services.model_facts import bundled_model_info, preset_param_count_exact
from llmweb.core.errors import DomainError
from tests.factories import job_record


def _record(team, name, *, parent=None, dataset=None, job=None, **kw) -> RegisteredModel:
    return RegisteredModel.objects.create(
        team=team,
        name=name,
        source=kw.pop("source", ModelSource.JOB),
        status=ModelStatus.READY,
        parent=parent,
        dataset=dataset,
        job=job,
        **kw,
    )


def _dataset(team, name="sms") -> Dataset:
    return Dataset.objects.create(
        team=team, name=name, schema="classification", original_filename="sms.tsv", status="ready"
    )


def _job(team, base, dataset=None, *, type="finetune", status=JobStatus.SUCCEEDED) -> Job:
    return job_record(team=team, type=type, base_model=base, dataset=dataset, status=status)


def bundled_of(team) -> RegisteredModel:
    return RegisteredModel.objects.get(team=team, source=ModelSource.BUNDLED)


def test_every_new_team_gets_the_ready_bundled_encoder(team, charlie_team, alice):
    extra = accounts.team_create(owner=alice, name="Another lab")
    for t in (team, charlie_team, extra):
        m = bundled_of(t)
        assert (m.name, m.version, m.status, m.task) == ("all-MiniLM-L6-v2", 1, "ready", "encoder")
        assert m.num_parameters == 22_713_216 and m.tokenizer["vocab_size"] == 30522
        assert (m.artifact_dir / "model.safetensors").is_file()
        assert "all-MiniLM-L6-v2" in m.card


def test_registering_the_bundled_model_twice_keeps_one_record(team):
    again = services.model_register_bundled(team=team)
    assert again.pk == bundled_of(team).pk
    assert RegisteredModel.objects.filter(team=team, source="bundled").count() == 1


def test_seed_gives_teams_made_before_the_signal_the_bundled_model(team, charlie_team, alice):
    from llmweb.catalog.seed import seed_demo

    RegisteredModel.objects.filter(source="bundled").delete()
    seed_demo(team=team, user=alice)
    assert bundled_of(team) and bundled_of(charlie_team)


def test_bundled_description_without_torch_matches_inspect_model():
    from jobs.engine.models import bundled_model_path, inspect_model

    expected = inspect_model(bundled_model_path()).as_dict()
    assert bundled_model_info().as_dict() == expected


def test_bundled_classification_head_runs_a_forward_pass_offline(team):
    import torch

    from jobs.engine.models import load_for_task

    model, tok = load_for_task(bundled_of(team).artifact_dir, "classification", num_labels=3)
    batch = tok(["free prize, call now", "see you at lunch"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


@pytest.mark.parametrize("vocab", [None, 300, 12345])
def test_preset_param_counts_match_the_engine_for_every_preset(vocab):
    from jobs.engine.presets import PRESETS, preset_param_count

    for (family, size), preset in PRESETS.items():
        v = vocab or preset.default_vocab_size
        assert preset_param_count_exact(family, size, v) == preset_param_count(family, size, v), (
            family,
            size,
        )


def test_same_name_in_a_team_gets_the_next_version(team, charlie_team):
    a = create_versioned(RegisteredModel, team=team, name="spam", source="upload")
    b = create_versioned(RegisteredModel, team=team, name="spam", source="upload")
    c = create_versioned(RegisteredModel, team=charlie_team, name="spam", source="upload")
    assert (a.version, b.version, c.version) == (1, 2, 1)


def test_lineage_across_two_generations_labels_each_edge(team):
    base = bundled_of(team)
    ds1, ds2 = _dataset(team, "sms"), _dataset(team, "sms-clean")
    job1 = _job(team, base, ds1)
    child = _record(team, "mini-finetune", parent=base, dataset=ds1, job=job1)
    job2 = _job(team, child, ds2, type="distill")
    grandchild = _record(team, "mini-finetune-distill", parent=child, dataset=ds2, job=job2)
    sibling = _record(team, "other", parent=base)

    lineage = model_lineage(model=child)
    assert lineage["root"] == base.pk and lineage["current"] == child.pk
    gens = {n["id"]: n["generation"] for n in lineage["nodes"]}
    assert gens == {base.pk: 0, child.pk: 1, grandchild.pk: 2}  # a sibling is not lineage
    assert sibling.pk not in gens
    edges = {(e["from"], e["to"]): e for e in lineage["edges"]}
    assert edges[(base.pk, child.pk)]["label"] == f"fine-tuned from · sms v1 · #{job1.pk} finetune"
    assert edges[(child.pk, grandchild.pk)]["dataset"]["label"] == "sms-clean v1"
    assert edges[(child.pk, grandchild.pk)]["job"] == {
        "id": job2.pk,
        "type": "distill",
        "label": f"#{job2.pk} distill",
    }
    assert {n["id"] for n in model_lineage(model=base)["nodes"]} == {
        base.pk,
        child.pk,
        grandchild.pk,
        sibling.pk,
    }


def test_register_from_job_moves_the_output_and_records_lineage(team, tiny_model, tmp_path):
    import shutil

    base = bundled_of(team)
    ds = _dataset(team)
    job = _job(team, base, ds, status=JobStatus.RUNNING)
    job.params = {"learning_rate": 5e-5, "epochs": 1}
    job.save()
    out = tmp_path / "output"
    shutil.copytree(tiny_model, out)

    m = services.model_register_from_job(job=job, output_dir=out, metrics={"accuracy": 0.93})
    assert not out.exists() and (m.artifact_dir / "model.safetensors").is_file()
    assert (m.name, m.version, m.source, m.status) == (
        "all-MiniLM-L6-v2·sms",
        1,
        "job",
        "ready",
    )
    assert (m.parent, m.dataset, m.job) == (base, ds, job)
    assert m.task == "causal-lm" and m.num_parameters > 400_000 and m.metrics == {"accuracy": 0.93}
    assert "accuracy" in m.card and "learning_rate" in m.card and "sms v1" in m.card
    assert services.model_register_from_job(job=job, output_dir=out, metrics={}) == m


def test_results_are_named_for_the_job_and_versioned_within_one_lineage(team):
    base = bundled_of(team)
    sms, reviews = _dataset(team, "sms"), _dataset(team, "reviews")

    def result_of(job: Job) -> RegisteredModel:
        name = services.job_result_name(job)
        return create_versioned(
            RegisteredModel,
            team=team,
            name=name,
            source="job",
            parent=job.base_model,
            dataset=job.dataset,
            job=job,
        )

    first = result_of(_job(team, base, sms))
    again = result_of(_job(team, base, sms))
    assert (first.name, first.version) == ("all-MiniLM-L6-v2·sms", 1)
    assert (again.name, again.version) == ("all-MiniLM-L6-v2·sms", 2)
    other = result_of(_job(team, base, reviews))
    assert (other.name, other.version) == ("all-MiniLM-L6-v2·reviews", 1)

    named = _job(team, base, sms)
    named.name = "spam filter"
    assert result_of(named).name == "spam filter"
    # The same job name on unrelated data starts its own family instead of making a v2.
    reused = _job(team, base, reviews)
    reused.name = "spam filter"
    assert (result_of(reused).name, RegisteredModel.objects.filter(name="spam filter").count()) == (
        "spam filter·reviews",
        1,
    )
    # Training the fine-tune again is a new lineage too (its base is the fine-tune).
    deeper = result_of(_job(team, first, sms))
    assert (deeper.name, deeper.version) == ("all-MiniLM-L6-v2·sms·sms", 1)


def test_delete_is_refused_while_a_queued_job_uses_the_model(team, alice):
    m = _record(team, "busy", source="upload")
    job = _job(team, m, status=JobStatus.QUEUED)
    with pytest.raises(services.ModelConflict, match=f"#{job.pk} \\(queued\\)"):
        services.model_delete(user=alice, model=m)
    assert RegisteredModel.objects.filter(pk=m.pk).exists()


def test_delete_removes_the_record_and_its_files(team, alice, django_capture_on_commit_callbacks):
    m = _record(team, "gone", source="upload")
    m.artifact_dir.mkdir(parents=True, exist_ok=True)
    (m.artifact_dir / "config.json").write_text(json.dumps({}))
    with django_capture_on_commit_callbacks(execute=True):
        services.model_delete(user=alice, model=m)
    assert not RegisteredModel.objects.filter(pk=m.pk).exists()
    assert not m.storage_dir.exists()


def test_the_bundled_model_cannot_be_deleted(team, alice):
    with pytest.raises(services.ModelConflict, match="bundled"):
        services.model_delete(user=alice, model=bundled_of(team))


def test_viewers_cannot_write_models(team, alice, charlie):
    accounts.team_invite(by=alice, team=team, username="charlie", role=Role.VIEWER)
    with pytest.raises(PermissionDenied, match="read-only"):
        services.model_upload_create(
            user=charlie, team=team, name="x", uploaded_file=SimpleUploadedFile("m.zip", b"PK")
        )


def test_upload_over_the_limit_is_refused_before_anything_is_stored(team, alice, settings):
    settings.LLMWEB_MAX_UPLOAD_BYTES = 1000
    before = RegisteredModel.objects.count()
    with pytest.raises(DomainError, match="limit is"):
        services.model_upload_create(
            user=alice,
            team=team,
            name="big",
            uploaded_file=SimpleUploadedFile("m.zip", b"x" * 2000),
        )
    assert RegisteredModel.objects.count() == before


def test_upload_whose_size_lies_is_stopped_while_copying(team, alice, settings):
    settings.LLMWEB_MAX_UPLOAD_BYTES = 1000
    f = SimpleUploadedFile("m.zip", b"x" * 5000)
    f.size = 10  # a declared size that lies
    with pytest.raises(DomainError, match="limit is"):
        services.model_upload_create(user=alice, team=team, name="liar", uploaded_file=f)
    assert not RegisteredModel.objects.filter(name="liar").exists()
    assert not any((Path(settings.STORAGE_DIR) / "teams" / str(team.pk)).rglob("model.zip"))


def test_upload_of_something_that_is_not_an_archive_is_refused(team, alice):
    with pytest.raises(DomainError, match="not a .zip, .tar.gz or .tgz"):
        services.model_upload_create(
            user=alice,
            team=team,
            name="x",
            uploaded_file=SimpleUploadedFile("weights.bin", b"\x80\x04"),
        )


def test_list_sorts_by_a_metric_with_missing_values_last(team, alice):
    a = _record(team, "a", metrics={"accuracy": 0.7})
    b = _record(team, "b", metrics={"accuracy": 0.9})
    c = _record(team, "c")
    rows = model_list_filtered(user=alice, team=team, ordering="-metric:accuracy", source="job")
    assert [m.pk for m in rows] == [b.pk, a.pk, c.pk]
    rows = model_list_filtered(user=alice, team=team, ordering="metric:accuracy", source="job")
    assert [m.pk for m in rows] == [a.pk, b.pk, c.pk]
    with pytest.raises(DomainError):
        model_list_filtered(user=alice, ordering="secret_field")


def test_delete_of_a_model_a_finished_job_read_names_the_job(team, alice):
    from jobs.models import JobModel

    teacher, student = _record(team, "teacher"), _record(team, "student")
    distill = Job.objects.create(team=team, type="distill", status=JobStatus.SUCCEEDED)
    JobModel.objects.create(job=distill, model=teacher, role="teacher", position=0)
    JobModel.objects.create(job=distill, model=student, role="student", position=1)
    job = _job(team, student)  # its link's id is no longer its own
    with pytest.raises(services.ModelConflict, match=f"Finished jobs #{distill.pk}, #{job.pk} "):
        services.model_delete(user=alice, model=student)
