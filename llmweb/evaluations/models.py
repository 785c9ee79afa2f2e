"""Evaluation records: model x dataset version x split -> metrics, with the metric
implementation's signature, speed and size on a named device, and per-sample rows.

Every number a comparison or leaderboard shows has its home here: an evaluate job writes
one record per model, and a fine-tune's final held-out metrics become one too.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from llmweb.accounts.models import Team, TeamScopedQuerySet


class EvaluationSource(models.TextChoices):
    EVALUATE = "evaluate", "Evaluate job"
    FINETUNE = "finetune", "Fine-tune final metrics"


class Evaluation(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="evaluations")
    model = models.ForeignKey(
        "catalog.RegisteredModel", on_delete=models.CASCADE, related_name="evaluations"
    )
    # A ready dataset is immutable and a new upload is a new version, so the row names
    # the exact data the numbers came from.
    dataset = models.ForeignKey(
        "catalog.Dataset", on_delete=models.CASCADE, related_name="evaluations"
    )
    split = models.CharField(max_length=20)
    task = models.CharField(max_length=24)  # the dataset's schema
    # What the metrics are: classification | perplexity | pseudo-perplexity | generation.
    measure = models.CharField(max_length=24)
    metrics = models.JSONField(default=dict)
    # metric -> implementation signature (sacrebleu's, rouge-score's version and tokenizer…)
    signatures = models.JSONField(default=dict)
    device = models.CharField(max_length=100, blank=True)
    speed = models.JSONField(default=dict, blank=True)
    # Per-sample JSONL, relative to STORAGE_DIR (empty when none was kept).
    samples_path = models.CharField(max_length=500, blank=True)
    num_samples = models.PositiveIntegerField(default=0)
    source = models.CharField(
        max_length=12, choices=EvaluationSource.choices, default=EvaluationSource.EVALUATE
    )
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="evaluations"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["dataset", "split"])]
        constraints = [
            # A redelivered job writes each model's record once.
            models.UniqueConstraint(
                fields=["job", "model"],
                condition=models.Q(job__isnull=False),
                name="evaluation_job_model_unique",
            )
        ]

    def __str__(self) -> str:
        return f"evaluation #{self.pk}: model {self.model_id} on {self.dataset_id}/{self.split}"

    @property
    def samples_file(self) -> Path | None:
        return Path(settings.STORAGE_DIR) / self.samples_path if self.samples_path else None
