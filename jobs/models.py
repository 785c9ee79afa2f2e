"""Job records. Only jobs/services.py writes a Job's state; every transition is a JobEvent."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from llmweb.accounts.models import Team, TeamScopedQuerySet


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
    # The kind's name (jobs.kinds registry); kinds are code, so no choices in the schema.
    type = models.CharField(max_length=40)
    name = models.CharField(max_length=100, blank=True)
    params = models.JSONField(default=dict)
    # Models the job reads, by role (base, teacher, student, ...), are JobModel rows.
    dataset = models.ForeignKey(
        "catalog.Dataset", on_delete=models.PROTECT, null=True, blank=True, related_name="jobs"
    )
    eval_dataset = models.ForeignKey(
        "catalog.Dataset",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="eval_jobs",
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
    # A chain: ``then`` is a job to submit with this job's result model once it succeeds
    # ({"type", "params", "inputs"}; validated at submit); ``follows`` is set on that
    # follow-up (one per job: the unique key guards against a second start).
    then = models.JSONField(null=True, blank=True)
    follows = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="followed_by"
    )
    last_seq = models.PositiveIntegerField(default=0)
    # What people write on a job: free notes, short tags, and "archived" to hide it.
    notes = models.TextField(blank=True, max_length=5000)
    tags = models.JSONField(default=list, blank=True)
    archived = models.BooleanField(default=False)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "queue"])]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"

    def models_in_role(self, role: str) -> list:
        """The job's models in ``role``, in input order (prefetch ``job_models__model``)."""
        links = sorted(self.job_models.all(), key=lambda link: link.position)
        return [link.model for link in links if link.role == role]

    @property
    def base_model(self):
        """The model the job starts from (role ``base``, else its first model), or None."""
        links = sorted(self.job_models.all(), key=lambda link: (link.role != "base", link.position))
        return links[0].model if links else None

    @property
    def base_model_id(self) -> int | None:
        model = self.base_model
        return model.pk if model else None

    @property
    def follow_up(self) -> Job | None:
        """The job this one started with its result (``then``), or None."""
        return getattr(self, "followed_by", None)  # the reverse accessor raises when absent

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
    def duration_seconds(self) -> float | None:
        """Wall time of the last attempt: started until finished (or until now)."""
        if self.started_at is None:
            return None
        from django.utils import timezone

        end = self.finished_at or (None if self.is_finished else timezone.now())
        return (end - self.started_at).total_seconds() if end else None

    @property
    def headline_metric(self) -> tuple[str, float] | None:
        """The one number the job list shows for a finished job."""
        for key in ("accuracy", "bleu", "perplexity", "eval_loss"):
            value = (self.metrics or {}).get(key)
            if isinstance(value, int | float):
                return key, value
        return None

    @property
    def progress_fraction(self) -> float:
        if self.status == JobStatus.SUCCEEDED:
            return 1.0
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


class JobModel(models.Model):
    """One model a job reads, in a role; models stay while a job references them."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="job_models")
    model = models.ForeignKey(
        "catalog.RegisteredModel", on_delete=models.PROTECT, related_name="job_links"
    )
    role = models.CharField(max_length=20)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["job_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="job_model_position_unique")
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} {self.role}: model {self.model_id}"


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
