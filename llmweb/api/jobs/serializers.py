"""Job serializers; the create body's input fields come from the job-kinds registry."""

from __future__ import annotations

from rest_framework import serializers

from jobs import selectors
from jobs.kinds import all_kinds
from jobs.models import Job, JobEvent

MAX_ID = 2**63 - 1


def _ref(obj) -> dict | None:
    return {"id": obj.pk, "name": str(obj)} if obj is not None else None


class JobSerializer(serializers.ModelSerializer):
    base_model = serializers.SerializerMethodField()
    models = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    eval_dataset = serializers.SerializerMethodField()
    result_model = serializers.SerializerMethodField()
    progress = serializers.FloatField(source="progress_fraction", read_only=True)
    queue_position = serializers.SerializerMethodField()
    queue_eta_seconds = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    headline_metric = serializers.SerializerMethodField()
    then = serializers.JSONField(read_only=True, allow_null=True)
    follows = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    followed_by = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "team",
            "type",
            "name",
            "status",
            "params",
            "base_model",
            "models",
            "dataset",
            "eval_dataset",
            "queue",
            "priority",
            "step",
            "total_steps",
            "epoch",
            "progress",
            "eta_seconds",
            "checkpoint_step",
            "queue_position",
            "queue_eta_seconds",
            "worker",
            "device",
            "attempts",
            "metrics",
            "result_model",
            "error",
            "cancel_requested",
            "retry_of",
            "then",
            "follows",
            "followed_by",
            "created_by",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "headline_metric",
            "notes",
            "tags",
            "archived",
            "last_seq",
        ]

    def get_headline_metric(self, job) -> dict | None:
        found = job.headline_metric
        return {"name": found[0], "value": found[1]} if found else None

    def get_followed_by(self, job) -> int | None:
        """The id of the follow-up this job started (``then``), once it started."""
        follow = job.follow_up
        return follow.pk if follow is not None else None

    def get_base_model(self, job) -> dict | None:
        return _ref(job.base_model)

    def get_models(self, job) -> list[dict]:
        links = sorted(job.job_models.all(), key=lambda link: link.position)
        return [{"role": link.role, **_ref(link.model)} for link in links]

    def get_dataset(self, job) -> dict | None:
        return _ref(job.dataset)

    def get_eval_dataset(self, job) -> dict | None:
        return _ref(job.eval_dataset)

    def get_result_model(self, job) -> dict | None:
        return _ref(job.result_model)

    def get_queue_position(self, job) -> int | None:
        return selectors.job_queue_position(job=job)

    def get_queue_eta_seconds(self, job) -> float | None:
        return selectors.job_queue_eta_seconds(job=job)

    def get_error(self, job) -> dict | None:
        if not job.error:
            return None
        request = self.context.get("request")
        error = dict(job.error)
        if request is not None and request.user.is_staff and job.error_traceback:
            error["traceback"] = job.error_traceback  # admins only
        return error


class FollowUpSerializer(serializers.Serializer):
    """A job to run on this job's result model once it succeeds (a chain of two jobs).

    The follow-up's model input is the first job's result; the server checks ``params``
    against the follow-up kind's parameter table at submit."""

    type = serializers.ChoiceField(choices=[], help_text="The follow-up's kind, e.g. compress.")
    params = serializers.JSONField(default=dict, help_text="The follow-up kind's params.")
    inputs = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        default=dict,
        help_text="The follow-up's other inputs by name (ids), e.g. eval_dataset.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [(kind.name, kind.label) for kind in all_kinds()]


class JobCreateSerializer(serializers.Serializer):
    """A submission: the kind, its inputs by name (ids), params. Input fields are those
    of every registered kind, so the schema lists them all; each kind takes its own."""

    type = serializers.ChoiceField(choices=[], default="finetune")
    params = serializers.JSONField(default=dict)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    priority = serializers.IntegerField(min_value=-10, max_value=10, default=0)
    team = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="Defaults to the team of the first model or dataset.",
    )
    then = FollowUpSerializer(
        required=False,
        allow_null=True,
        help_text="A follow-up job submitted with this job's result model when it succeeds.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kinds = all_kinds()
        self.fields["type"].choices = [(kind.name, kind.label) for kind in kinds]
        for kind in kinds:
            for spec in kind.inputs:
                if spec.name in self.fields:
                    continue
                id_field = serializers.IntegerField(min_value=1, max_value=MAX_ID)
                self.fields[spec.name] = (
                    serializers.ListField(
                        child=id_field,
                        required=False,
                        max_length=spec.max_items,
                        help_text=spec.help,
                    )
                    if spec.many
                    else serializers.IntegerField(
                        required=False,
                        allow_null=True,
                        min_value=1,
                        max_value=MAX_ID,
                        help_text=spec.help or f"Id of the {spec.type} ({spec.role}).",
                    )
                )


class JobUpdateSerializer(serializers.Serializer):
    """What a PATCH may change: the words on a job, never its inputs or params."""

    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=40, allow_blank=False), required=False, max_length=20
    )
    archived = serializers.BooleanField(required=False)


class JobCloneSerializer(serializers.Serializer):
    params = serializers.JSONField(required=False, default=dict, help_text="Changed params.")
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = ["seq", "kind", "data", "created_at"]


class JobKindSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    queue = serializers.CharField()
    produces = serializers.CharField()
    inputs = serializers.ListField(child=serializers.DictField())
    params = serializers.DictField()
