"""Job records. Only jobs/services.py writes a Job's state; every transition is a JobEvent."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from llmweb.accounts.models import Team, TeamScopedQuerySet


class JobType(models.TextChoices):
    FINETUNE = "finetune"
    PRETRAIN = "pretrain"
    DISTILL = "distill"
    EVALUATE = "evaluate"
    COMPRESS = "compress"


class JobStatus(models.TextChoices):
    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    type = models.CharField(max_length=12, choices=JobType.choices)
    name = models.CharField(max_length=100, blank=True)
    params = models.JSONField(default=dict)
    base_model = models.ForeignKey(
        "catalog.RegisteredModel", on_delete=models.PROTECT, related_name="jobs"
    )
    dataset = models.ForeignKey(
        "catalog.Dataset", on_delete=models.PROTECT, null=True, related_name="jobs"
    )
    queue = models.CharField(max_length=20, default="gpu")
    priority = models.SmallIntegerField(default=0)
    status = models.CharField(
        max_length=12, choices=JobStatus.choices, default=JobStatus.VALIDATING
    )
    cancel_requested = models.BooleanField(default=False)
    # Progress, as last reported.
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    checkpoint_step = models.PositiveIntegerField(null=True, blank=True)
    # Who runs it. The heartbeat is the truth about liveness; the reaper reads it.
    worker = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=100, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    metrics = models.JSONField(default=dict, blank=True)
    result_model = models.ForeignKey(
        "catalog.RegisteredModel",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    error = models.JSONField(null=True, blank=True)  # {code, message, param}
    error_traceback = models.TextField(blank=True)  # admins only
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries"
    )
    last_seq = models.PositiveIntegerField(default=0)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "queue"])]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def work_dir(self) -> Path:
        return Path(settings.STORAGE_DIR) / "teams" / str(self.team_id) / "jobs" / str(self.pk)

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_dir / "checkpoints"

    @property
    def progress_fraction(self) -> float:
        if self.status == JobStatus.SUCCEEDED:
            return 1.0
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


class JobEvent(models.Model):
    """Append-only history of a job; ``seq`` is dense per job so clients can resume after N."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=20)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="job_event_seq_unique")]

    def __str__(self) -> str:
        return f"job {self.job_id} #{self.seq} {self.kind}"

    def as_message(self) -> dict:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "data": self.data,
            "time": self.created_at.isoformat() if self.created_at else None,
        }
