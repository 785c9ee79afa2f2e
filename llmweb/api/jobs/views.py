"""`/api/v1/jobs/`: submit, watch, cancel, retry and resume jobs of every kind;
`/api/v1/job-kinds/`: the kinds with their inputs and parameter schemas."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import preflight, selectors, services
from jobs.engine.train_config import param_schema
from jobs.errors import JobError
from jobs.kinds import all_kinds, get_kind
from jobs.models import Job
from llmweb.accounts.selectors import team_get_for_user
from llmweb.api.errors import error_response
from llmweb.api.jobs.serializers import (
    EventSerializer,
    JobCloneSerializer,
    JobCreateSerializer,
    JobKindSerializer,
    JobSerializer,
    JobUpdateSerializer,
)
from llmweb.catalog.models import Dataset, RegisteredModel

RECORDS = {"model": RegisteredModel, "dataset": Dataset}


def _resolve(request, data: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Kind, team and inputs of a submission, or a JobError naming the bad input.

    Ids of other teams read as "not found" (400 naming the input), never as "forbidden".
    """
    kind = get_kind(data["type"])
    inputs: dict[str, Any] = {}
    first_team = None
    for spec in kind.inputs:
        raw = data.get(spec.name)
        if raw in (None, []):
            continue
        ids = raw if spec.many else [raw]
        found = []
        for pk in ids:
            record = RECORDS[spec.type].objects.visible_to(request.user).filter(pk=pk).first()
            if record is None:
                raise JobError(
                    f"No {spec.type} with id {pk} in your teams.",
                    param=spec.name,
                    code=f"invalid_{spec.type}",
                )
            found.append(record)
            first_team = first_team or record.team
        inputs[spec.name] = found if spec.many else found[0]
    if data.get("team"):
        team = team_get_for_user(user=request.user, team_id=data["team"])
    elif first_team is not None:
        team = first_team
    else:
        raise JobError("Name the team, or the job's inputs.", param="team", code="invalid_team")
    return kind, team, inputs


def _job_error(exc: JobError) -> Response:
    return error_response(exc.message, code=exc.code, param=exc.param, http_status=exc.http_status)


class JobKindListApi(APIView):
    """Every job kind this server runs: its queue, inputs and parameter schema."""

    @extend_schema(responses=JobKindSerializer(many=True))
    def get(self, request):
        return Response([kind.schema() for kind in all_kinds()])


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    queryset = Job.objects.none()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        qs = selectors.job_list_for_user(user=self.request.user)
        params = self.request.query_params
        if s := params.get("status"):
            qs = qs.filter(status=s)
        if t := params.get("type"):
            qs = qs.filter(type=t)
        if team := params.get("team"):
            qs = qs.filter(team=team_get_for_user(user=self.request.user, team_id=team))
        if (archived := params.get("archived")) in ("true", "false", "1", "0"):
            qs = qs.filter(archived=archived in ("true", "1"))
        return qs

    def get_object(self):
        return selectors.job_get_for_user(user=self.request.user, job_id=self.kwargs["pk"])

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def create(self, request, *args, **kwargs):
        data = JobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            kind, team, inputs = _resolve(request, v)
            job = services.job_submit(
                user=request.user,
                team=team,
                job_type=kind.name,
                inputs=inputs,
                params=v["params"],
                name=v["name"],
                priority=v["priority"],
                then=v.get("then"),
            )
        except JobError as exc:
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
            kind, team, inputs = _resolve(request, v)
            checked = preflight.check(kind=kind, team=team, inputs=inputs, params=v["params"])
            preflight.check_then(kind=kind, team=team, then=v.get("then"))
        except JobError as exc:
            return _job_error(exc)
        return Response({"estimate": checked.estimate, "params": checked.params})

    @extend_schema(responses=inline_serializer("ParamSchema", {"params": serializers.DictField()}))
    @action(detail=False, methods=["get"])
    def params(self, request):
        """Every training parameter (fine-tune and pretrain); see /job-kinds/ for all kinds."""
        return Response({"params": param_schema()})

    def _control(self, request, fn):
        job = self.get_object()
        try:
            job = fn(user=request.user, job=job)
        except JobError as exc:
            return _job_error(exc)
        except PermissionDenied as exc:
            return error_response(str(exc), code="forbidden", http_status=403)
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(request=JobUpdateSerializer, responses=JobSerializer)
    def partial_update(self, request, pk=None):
        """Rename, annotate, tag or archive a job."""
        job = self.get_object()
        data = JobUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            job = services.job_update(user=request.user, job=job, **data.validated_data)
        except JobError as exc:
            return _job_error(exc)
        except PermissionDenied as exc:
            return error_response(str(exc), code="forbidden", http_status=403)
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, pk=None):
        """Delete a finished job with its events and files; the model it produced stays."""
        job = self.get_object()
        try:
            services.job_delete(user=request.user, job=job)
        except JobError as exc:
            return _job_error(exc)
        except PermissionDenied as exc:
            return error_response(str(exc), code="forbidden", http_status=403)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=JobCloneSerializer, responses={201: JobSerializer})
    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        """Run the job again with the same kind and inputs; ``params`` changes some."""
        job = self.get_object()
        data = JobCloneSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            new = services.job_clone(
                user=request.user, job=job, params=v.get("params"), name=v.get("name")
            )
        except JobError as exc:
            return _job_error(exc)
        except PermissionDenied as exc:
            return error_response(str(exc), code="forbidden", http_status=403)
        return Response(
            JobSerializer(new, context={"request": request}).data, status=status.HTTP_201_CREATED
        )

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
            after = min(max(0, int(request.query_params.get("after", 0))), 2**31 - 1)
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
