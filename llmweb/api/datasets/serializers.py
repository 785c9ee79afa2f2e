"""Dataset API shapes: the record, the upload form, previews and inspection."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from llmweb.catalog.models import Dataset, Schema
from llmweb.catalog.services.datasets import ENCODINGS, TXT_MODES


class DatasetSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    total_rows = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "id",
            "team",
            "name",
            "version",
            "description",
            "schema",
            "status",
            "progress",
            "progress_message",
            "original_filename",
            "size_bytes",
            "claimed_encoding",
            "encoding",
            "format",
            "mapping",
            "split_ratios",
            "seed",
            "stratify",
            "txt_mode",
            "num_rows",
            "total_rows",
            "label_names",
            "warnings",
            "error",
            "created_by",
            "created_at",
            "processed_at",
            "urls",
        ]
        read_only_fields = fields

    def get_total_rows(self, ds: Dataset) -> int:
        return sum((ds.num_rows or {}).values())

    def get_urls(self, ds: Dataset) -> dict[str, str]:
        return {
            "self": reverse("dataset-detail", args=[ds.pk]),
            "page": reverse("dataset-page", args=[ds.pk]),
            "rows": reverse("dataset-rows", args=[ds.pk]),
            "stats": reverse("dataset-stats", args=[ds.pk]),
            "download": reverse("dataset-download", args=[ds.pk]),
        }


class DatasetUploadSerializer(serializers.Serializer):
    """Multipart fields of ``POST /api/v1/datasets/``; the service validates the values."""

    file = serializers.FileField(
        help_text="CSV, TSV, JSON (array), JSONL, Parquet, TXT or a .zip of one."
    )
    name = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Default: the file name. The same name again makes a new version.",
    )
    schema = serializers.ChoiceField(choices=Schema.choices)
    team = serializers.IntegerField(required=False, help_text="Default: your active or first team.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    mapping = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text='JSON object {canonical column: source column}, e.g. {"text": "sms", '
        '"label": "class"}. Missing columns are suggested from the file.',
    )
    split_ratios = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text='"0.8,0.1,0.1" (default), "80,10,10" or a JSON list.',
    )
    seed = serializers.IntegerField(required=False, default=42)
    stratify = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Stratified split by label (classification schemas).",
    )
    encoding = serializers.ChoiceField(
        choices=[(k, v) for k, v in ENCODINGS.items()] + [("gbk", "GBK")],
        required=False,
        allow_blank=True,
        default="",
        help_text="Empty: detect. A claimed encoding is checked.",
    )
    txt_mode = serializers.ChoiceField(
        choices=list(TXT_MODES.items()), required=False, default="lines"
    )


class InspectRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="The file, or the first MiB of a text file with partial=true."
    )
    partial = serializers.BooleanField(required=False, default=False)
    encoding = serializers.CharField(required=False, allow_blank=True, default="")


class InspectSerializer(serializers.Serializer):
    format = serializers.CharField()
    encoding = serializers.CharField(allow_null=True)
    columns = serializers.ListField(child=serializers.CharField())
    sample = serializers.ListField(child=serializers.DictField())
    has_header = serializers.BooleanField(allow_null=True)
    member = serializers.CharField(allow_null=True)
    row_errors = serializers.ListField(child=serializers.DictField())
    suggested_mapping = serializers.DictField(child=serializers.DictField())


class RowsPageSerializer(serializers.Serializer):
    split = serializers.CharField()
    q = serializers.CharField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    count = serializers.IntegerField()
    num_pages = serializers.IntegerField()
    columns = serializers.ListField(child=serializers.CharField())
    results = serializers.ListField(child=serializers.DictField())


class StatsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    num_rows = serializers.DictField(child=serializers.IntegerField())
    label_names = serializers.ListField(child=serializers.CharField(), allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())
    stats = serializers.DictField()
