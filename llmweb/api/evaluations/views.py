"""`/api/v1/evaluations/`: evaluate models (an evaluate job), read the records and their
per-sample rows; `/api/v1/compare/`: models side by side on one dataset, or a
dataset's leaderboard. Everything is read through the evaluations selectors (team scope)."""

from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import services as job_services
from jobs.errors import JobError
from llmweb.accounts.selectors import team_get_for_user
from llmweb.api.evaluations.serializers import (
    EvaluationCreateSerializer,
    EvaluationFilterSerializer,
    EvaluationSerializer,
    SamplesQuerySerializer,
)
from llmweb.api.jobs.serializers import JobSerializer
from llmweb.catalog import selectors as catalog
from llmweb.evaluations import selectors, services
from llmweb.evaluations.models import Evaluation


def _visible(fn, param: str, **kwargs):
    """A record of the user's teams, or a 400 naming the input (never a 403 or 404)."""
    try:
        return fn(**kwargs)
    except Http404:
        what = "model" if param == "models" else "dataset"
        raise JobError(
            f"No {what} with id {next(iter(kwargs.values()))} in your teams.",
            code=f"invalid_{what}",
            param=param,
        ) from None


class EvaluationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = EvaluationSerializer
    queryset = Evaluation.objects.none()

    def get_queryset(self):
        qs = selectors.evaluation_list_for_user(user=self.request.user)
        if self.action != "list":
            return qs
        given = EvaluationFilterSerializer(data=self.request.query_params)
        given.is_valid(raise_exception=True)
        v = given.validated_data
        if "model" in v:
            qs = qs.filter(model_id=v["model"])
        if "dataset" in v:
            qs = qs.filter(dataset_id=v["dataset"])
        if v.get("split"):
            qs = qs.filter(split=v["split"])
        return qs

    def get_object(self):
        return selectors.evaluation_get_for_user(
            user=self.request.user, evaluation_id=self.kwargs["pk"]
        )

    @extend_schema(request=EvaluationCreateSerializer, responses={202: JobSerializer})
    def create(self, request, *args, **kwargs):
        """Start an evaluate job; its records appear here when it succeeds."""
        body = EvaluationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        user = request.user
        models = [
            _visible(catalog.model_get_for_user, "models", user=user, model_id=pk)
            for pk in v["models"]
        ]
        dataset = _visible(
            catalog.dataset_get_for_user, "dataset", user=user, dataset_id=v["dataset"]
        )
        team = team_get_for_user(user=user, team_id=v["team"]) if v["team"] else dataset.team
        params = dict(v["params"])
        if "split" in v:
            params["split"] = v["split"]
        job = job_services.job_submit(
            user=user,
            team=team,
            job_type="evaluate",
            inputs={"models": models, "dataset": dataset},
            params=params,
            name=v["name"],
        )
        return Response(
            JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("ordering", str, description="-loss (worst first), loss, score, i"),
            OpenApiParameter("true", str, description="true class"),
            OpenApiParameter("pred", str, description="predicted class"),
            OpenApiParameter("correct", bool),
            OpenApiParameter("offset", int),
            OpenApiParameter("limit", int),
        ],
        responses=inline_serializer(
            "EvaluationSamples",
            {
                "count": serializers.IntegerField(),
                "offset": serializers.IntegerField(),
                "limit": serializers.IntegerField(),
                "next_offset": serializers.IntegerField(allow_null=True),
                "results": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    @action(detail=True, methods=["get"])
    def samples(self, request, pk=None):
        """Per-sample rows: input, reference, prediction, loss or score, correct."""
        evaluation = self.get_object()
        q = SamplesQuerySerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        v = q.validated_data
        page = selectors.evaluation_samples(
            evaluation=evaluation,
            ordering=v["ordering"],
            true=v["true"] or None,
            pred=v["pred"] or None,
            correct=v["correct"],
            offset=v["offset"],
            limit=v["limit"],
        )
        following = page.offset + page.limit
        return Response(
            {
                "count": page.total,
                "offset": page.offset,
                "limit": page.limit,
                "next_offset": following if following < page.total else None,
                "results": page.rows,
            }
        )

    @extend_schema(
        request=inline_serializer("Rescore", {"metric": serializers.CharField()}),
        responses=EvaluationSerializer,
    )
    @action(detail=True, methods=["post"])
    def rescore(self, request, pk=None):
        """Score the saved predictions with another metric; no model runs."""
        evaluation = services.evaluation_rescore(
            user=request.user,
            evaluation=self.get_object(),
            metric=str(request.data.get("metric") or ""),
        )
        return Response(EvaluationSerializer(evaluation, context={"request": request}).data)

    @extend_schema(
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.BINARY, description="the per-sample rows, one JSON object a line"
            )
        }
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """The per-sample rows as the JSONL file the engine wrote."""
        evaluation = self.get_object()
        path = evaluation.samples_file
        if path is None or not path.is_file():
            raise Http404("This evaluation kept no per-sample rows.")
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=f"evaluation-{evaluation.pk}-samples.jsonl",
            content_type="application/jsonl",
        )


class CompareApi(APIView):
    """Latest evaluations of 2-6 models on one dataset, or all evaluations on a dataset;
    with the training curves of the models' jobs (``curves``: model id -> points of step,
    epoch, loss, eval_loss, at most 500) and generation outputs side by side (``outputs``)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("models", str, description="comma-separated model ids (2-6)"),
            OpenApiParameter("dataset", int, description="dataset id"),
            OpenApiParameter("outputs_offset", int, description="first row of outputs"),
            OpenApiParameter("outputs_limit", int, description="rows of outputs (1-200, 20)"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        return Response(
            selectors.comparison_for_user(
                user=request.user,
                models=request.query_params.get("models"),
                dataset=request.query_params.get("dataset"),
                outputs_offset=request.query_params.get("outputs_offset"),
                outputs_limit=request.query_params.get("outputs_limit"),
            )
        )
