"""`/api/v1/jobs/`: submit, watch, cancel, retry and resume training jobs."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs import preflight, selectors, services
from jobs.engine.train_config import param_schema
from jobs.models import Job, JobEvent, JobStatus, JobType
from llmweb.accounts.selectors import team_get_for_user
from llmweb.api.errors import error_response
from llmweb.catalog.models import Dataset, RegisteredModel


class JobSerializer(serializers.ModelSerializer):
    base_model = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    result_model = serializers.SerializerMethodField()
    progress = serializers.FloatField(source="progress_fraction", read_only=True)
    queue_position = serializers.SerializerMethodField()
    queue_eta_seconds = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

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
            "dataset",
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
            "created_by",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "last_seq",
        ]

    def get_base_model(self, job) -> dict:
        return {"id": job.base_model_id, "name": str(job.base_model)}

    def get_dataset(self, job) -> dict | None:
        return {"id": job.dataset_id, "name": str(job.dataset)} if job.dataset_id else None

    def get_result_model(self, job) -> dict | None:
        return (
            {"id": job.result_model_id, "name": str(job.result_model)}
            if job.result_model_id
            else None
        )

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


class JobCreateSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=JobType.choices, default=JobType.FINETUNE)
    base_model = serializers.IntegerField()
    dataset = serializers.IntegerField()
    params = serializers.JSONField(default=dict)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    priority = serializers.IntegerField(min_value=-10, max_value=10, default=0)
    team = serializers.IntegerField(
        required=False, help_text="Defaults to the team of the base model."
    )


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = ["seq", "kind", "data", "created_at"]


def _resolve(request, data) -> tuple:
    """Team, model and dataset of a submission, or a JobError naming the bad param.

    Ids of other teams read as "not found" (400 naming the param), never as "forbidden".
    """
    user = request.user
    model = RegisteredModel.objects.visible_to(user).filter(pk=data["base_model"]).first()
    if model is None:
        raise services.JobError(
            f"No model with id {data['base_model']} in your teams.",
            param="base_model",
            code="invalid_model",
        )
    dataset = Dataset.objects.visible_to(user).filter(pk=data["dataset"]).first()
    if dataset is None:
        raise services.JobError(
            f"No dataset with id {data['dataset']} in your teams.",
            param="dataset",
            code="invalid_dataset",
        )
    team = team_get_for_user(user=user, team_id=data["team"]) if data.get("team") else model.team
    return team, model, dataset


def _job_error(exc: services.JobError):
    return error_response(exc.message, code=exc.code, param=exc.param, http_status=exc.http_status)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    queryset = Job.objects.none()

    def get_queryset(self):
        qs = selectors.job_list_for_user(user=self.request.user)
        params = self.request.query_params
        if s := params.get("status"):
            qs = qs.filter(status=s)
        if t := params.get("type"):
            qs = qs.filter(type=t)
        if team := params.get("team"):
            qs = qs.filter(team=team_get_for_user(user=self.request.user, team_id=team))
        return qs

    def get_object(self):
        return selectors.job_get_for_user(user=self.request.user, job_id=self.kwargs["pk"])

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def create(self, request, *args, **kwargs):
        data = JobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            team, model, dataset = _resolve(request, v)
            job = services.job_submit(
                user=request.user,
                team=team,
                job_type=v["type"],
                base_model=model,
                dataset=dataset,
                params=v["params"],
                name=v["name"],
                priority=v["priority"],
            )
        except services.JobError as exc:
            return _job_error(exc)
        return Response(
            JobSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        request=JobCreateSerializer,
        responses=inline_serializer("Estimate", {"estimate": serializers.DictField()}),
    )
    @action(detail=False, methods=["post"])
    def estimate(self, request):
        """Pre-flight without submitting: the same checks, plus steps, memory and time."""
        data = JobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            team, model, dataset = _resolve(request, v)
            checked = preflight.check(
                job_type=v["type"], team=team, base_model=model, dataset=dataset, params=v["params"]
            )
        except services.JobError as exc:
            return _job_error(exc)
        return Response({"estimate": checked.estimate, "params": checked.params})

    @extend_schema(responses=inline_serializer("ParamSchema", {"params": serializers.DictField()}))
    @action(detail=False, methods=["get"])
    def params(self, request):
        """Every training parameter with its type, default, bounds and help."""
        return Response({"params": param_schema()})

    def _control(self, request, fn):
        job = self.get_object()
        try:
            job = fn(user=request.user, job=job)
        except services.JobError as exc:
            return _job_error(exc)
        except PermissionDenied as exc:
            return error_response(str(exc), code="forbidden", http_status=403)
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._control(request, services.job_cancel)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        resp = self._control(request, services.job_retry)
        if resp.status_code == 200:
            resp.status_code = status.HTTP_201_CREATED
        return resp

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._control(request, services.job_resume)

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Only events with seq > after.")],
        responses=EventSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """The job's history; poll with ``after`` = the last seq you saw to miss nothing."""
        job = self.get_object()
        try:
            after = max(0, int(request.query_params.get("after", 0)))
        except ValueError:
            return error_response(
                "after must be a whole number (the last seq you saw).", param="after"
            )
        events = selectors.job_events_after(job=job, after=after, limit=1000)
        return Response(
            {
                "job": job.pk,
                "status": job.status,
                "last_seq": job.last_seq,
                "events": EventSerializer(events, many=True).data,
            }
        )


__all__ = ["JobViewSet", "JobStatus"]
