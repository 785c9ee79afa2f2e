"""Dataset and model records. Files live under STORAGE_DIR; rows say where and in what state."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings
from django.db import models

from llmweb.accounts.models import Team, TeamScopedQuerySet


class Schema(models.TextChoices):
    CLASSIFICATION = "classification", "Classification (text, label)"
    PAIR_CLASSIFICATION = "pair-classification", "Pair classification (text_a, text_b, label)"
    CAUSAL_LM = "causal-lm", "Causal language modelling (text)"
    SEQ2SEQ = "seq2seq", "Sequence to sequence (source, target)"
    MASKED_LM = "masked-lm", "Masked language modelling (text)"


class DatasetStatus(models.TextChoices):
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class StoredMixin:
    """Records own a folder under STORAGE_DIR; deleting the record deletes the folder."""

    storage_kind = ""

    @property
    def storage_dir(self) -> Path:
        return (
            Path(settings.STORAGE_DIR)
            / "teams"
            / str(self.team_id)
            / self.storage_kind
            / str(self.pk)
        )

    def delete_files(self) -> None:
        shutil.rmtree(self.storage_dir, ignore_errors=True)


class Dataset(StoredMixin, models.Model):
    storage_kind = "datasets"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True, max_length=5000)
    schema = models.CharField(max_length=24, choices=Schema.choices)
    status = models.CharField(
        max_length=12, choices=DatasetStatus.choices, default=DatasetStatus.UPLOADED
    )
    # What the user sent and asked for.
    original_filename = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(default=0)
    claimed_encoding = models.CharField(max_length=32, blank=True)
    mapping = models.JSONField(null=True, blank=True)
    split_ratios = models.JSONField(default=list)
    seed = models.IntegerField(default=42)
    stratify = models.BooleanField(default=True)
    txt_mode = models.CharField(max_length=10, default="lines")
    # How to read the file: {"format", "delimiter", "has_header"} as chosen or sniffed.
    read_options = models.JSONField(default=dict, blank=True)
    # A cleaned (or otherwise derived) version names its source and what was done.
    derived_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="derived"
    )
    lineage_note = models.TextField(blank=True)
    # What processing found.
    format = models.CharField(max_length=16, blank=True)
    encoding = models.CharField(max_length=32, blank=True)
    num_rows = models.JSONField(default=dict, blank=True)
    label_names = models.JSONField(null=True, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    error = models.JSONField(null=True, blank=True)
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Liveness of the task that processes this record (catalog/services/liveness.py): the claim
    # and a worker thread set the heartbeat; the reaper requeues stale or unclaimed work.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveSmallIntegerField(default=0)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name", "version"], name="dataset_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def upload_path(self) -> Path:
        return self.storage_dir / "upload" / self.original_filename

    @property
    def processed_dir(self) -> Path:
        return self.storage_dir / "processed"

    @property
    def extra_columns(self) -> list[str]:
        """Columns kept beside the schema's (a domain, a source): what evaluations can
        slice by. Processing records them in ``stats``, so no field of their own."""
        entries = (self.stats or {}).get("extra_columns") or []
        return [str(e["name"]) for e in entries if isinstance(e, dict) and e.get("name")]


class ModelTask(models.TextChoices):
    CLASSIFICATION = "classification"
    CAUSAL_LM = "causal-lm"
    SEQ2SEQ = "seq2seq"
    MASKED_LM = "masked-lm"
    ENCODER = "encoder"


class ModelSource(models.TextChoices):
    BUNDLED = "bundled"
    PRESET = "preset"
    UPLOAD = "upload"
    HUB = "hub"
    JOB = "job"


class ModelStatus(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class RegisteredModel(StoredMixin, models.Model):
    """A model a team can train from, evaluate or chat with. The artifact is an HF folder."""

    storage_kind = "models"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    task = models.CharField(max_length=16, choices=ModelTask.choices, blank=True)
    source = models.CharField(max_length=10, choices=ModelSource.choices)
    status = models.CharField(
        max_length=10, choices=ModelStatus.choices, default=ModelStatus.PENDING
    )
    architecture = models.CharField(max_length=100, blank=True)
    model_type = models.CharField(max_length=50, blank=True)
    num_parameters = models.BigIntegerField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    dtype = models.CharField(max_length=20, blank=True)
    max_length = models.PositiveIntegerField(null=True, blank=True)
    tokenizer = models.JSONField(default=dict, blank=True)
    label_names = models.JSONField(null=True, blank=True)
    config_summary = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    card = models.TextField(blank=True, max_length=100_000)
    # Where the weights are: bundled models name the package; everything else is in storage.
    bundled_name = models.CharField(max_length=100, blank=True)
    hub_id = models.CharField(max_length=200, blank=True)
    preset = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    # Lineage.
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    dataset = models.ForeignKey(
        Dataset, on_delete=models.SET_NULL, null=True, blank=True, related_name="models"
    )
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The kind of the edge from ``parent``: "fine-tuned from", "distilled from",
    # "quantized from"... (the job kind that made the model says which).
    lineage_edge = models.CharField(max_length=40, blank=True)
    # What a distill or compress job measured: before/after figures and their ratios.
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Liveness of the task that processes this record (catalog/services/liveness.py): the claim
    # and a worker thread set the heartbeat; the reaper requeues stale or unclaimed work.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveSmallIntegerField(default=0)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name", "version"], name="model_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def artifact_dir(self) -> Path:
        """The HF folder to load. Bundled weights stay in site-packages, read-only."""
        if self.source == ModelSource.BUNDLED:
            from jobs.engine.models import bundled_model_path

            return bundled_model_path()
        return self.storage_dir / "artifact"
