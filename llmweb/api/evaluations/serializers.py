"""Evaluation serializers: the record, a submission (an evaluate job), samples."""

from __future__ import annotations

from rest_framework import serializers

from jobs.engine.rescoring import rescore_metrics
from jobs.kinds.evaluate import MAX_MODELS
from llmweb.core.ids import MAX_ID
from llmweb.evaluations.models import Evaluation


def _ref(obj) -> dict | None:
    return {"id": obj.pk, "name": str(obj)} if obj is not None else None


class EvaluationSerializer(serializers.ModelSerializer):
    model = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    samples_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    rescore_metrics = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "team",
            "model",
            "dataset",
            "split",
            "task",
            "measure",
            "metrics",
            "signatures",
            "device",
            "speed",
            "num_samples",
            "source",
            "job",
            "created_at",
            "samples_url",
            "download_url",
            "rescore_metrics",
        ]

    def get_model(self, obj) -> dict | None:
        return _ref(obj.model)

    def get_dataset(self, obj) -> dict | None:
        return _ref(obj.dataset)

    def _url(self, obj, suffix: str) -> str | None:
        if not obj.samples_path:
            return None
        request = self.context.get("request")
        path = f"/api/v1/evaluations/{obj.pk}/{suffix}/"
        return request.build_absolute_uri(path) if request else path

    def get_samples_url(self, obj) -> str | None:
        return self._url(obj, "samples")

    def get_download_url(self, obj) -> str | None:
        return self._url(obj, "download")

    def get_rescore_metrics(self, obj) -> list[str]:
        return rescore_metrics(obj.measure) if obj.samples_path else []


class EvaluationCreateSerializer(serializers.Serializer):
    """``POST /api/v1/evaluations/``: the same job as ``POST /api/v1/jobs/`` with type
    ``evaluate``; ``split`` may be given at the top level or in ``params``."""

    models = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        min_length=1,
        max_length=MAX_MODELS,
    )
    dataset = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    split = serializers.CharField(required=False, allow_blank=False)
    params = serializers.DictField(required=False, default=dict)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    team = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=MAX_ID
    )


class SamplesQuerySerializer(serializers.Serializer):
    ordering = serializers.CharField(required=False, default="-loss")
    true = serializers.CharField(required=False, allow_blank=True, default="")
    pred = serializers.CharField(required=False, allow_blank=True, default="")
    correct = serializers.BooleanField(required=False, allow_null=True, default=None)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)


class EvaluationFilterSerializer(serializers.Serializer):
    """``GET /api/v1/evaluations/`` filters; bad values are a 400, never a 500."""

    model = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    dataset = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    split = serializers.CharField(required=False, max_length=20)
