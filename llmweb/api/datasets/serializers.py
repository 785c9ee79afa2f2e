"""Dataset API shapes: the record, the upload form, previews and inspection."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from llmweb.catalog.models import Dataset, Schema
from llmweb.catalog.selectors import catalog_waiting_message
from llmweb.catalog.services.datasets import (
    DELIMITER_CHOICES,
    ENCODINGS,
    FORMATS,
    HEADER_CHOICES,
    TXT_MODES,
)
from llmweb.core.ids import ID_FIELD_BOUNDS, SEED_BOUNDS


class DatasetSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id", read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )
    total_rows = serializers.SerializerMethodField()
    # Kept beside the schema's columns; an evaluation's slice_column is one of them.
    extra_columns = serializers.ListField(child=serializers.CharField(), read_only=True)
    urls = serializers.SerializerMethodField()
    # While queued: "Waiting for a worker: N ahead of it, queued 2 min ago" (never bare).
    progress_message = serializers.SerializerMethodField()

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
            "read_options",
            "derived_from",
            "generated_by",
            "lineage_note",
            "num_rows",
            "total_rows",
            "label_names",
            "extra_columns",
            "warnings",
            "error",
            "created_by",
            "created_at",
            "processed_at",
            "urls",
        ]
        read_only_fields = fields

    def get_progress_message(self, ds: Dataset) -> str:
        return catalog_waiting_message(ds) or ds.progress_message

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


class ReadOptionsFields(serializers.Serializer):
    """How to read the file; empty values mean "detect from the content"."""

    format = serializers.ChoiceField(
        choices=list(FORMATS.items()),
        required=False,
        allow_blank=True,
        default="",
        help_text="Empty: from the content (.txt, .dat and extension-less files are sniffed).",
    )
    delimiter = serializers.ChoiceField(
        choices=list(DELIMITER_CHOICES.items()),
        required=False,
        allow_blank=True,
        default="",
        help_text="tab, comma, semicolon or pipe; empty: detect.",
    )
    has_header = serializers.ChoiceField(
        choices=[*HEADER_CHOICES.items(), ("true", "yes"), ("false", "no")],
        required=False,
        allow_blank=True,
        default="",
        help_text="yes/true: the first row names the columns; no/false: it is data; empty: detect.",
    )


class DatasetUploadSerializer(ReadOptionsFields):
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
    team = serializers.IntegerField(
        required=False, help_text="Default: your active or first team.", **ID_FIELD_BOUNDS
    )
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
    seed = serializers.IntegerField(required=False, default=42, **SEED_BOUNDS)
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


class InspectRequestSerializer(ReadOptionsFields):
    file = serializers.FileField(
        help_text="The file, or the first MiB of a text file with partial=true."
    )
    partial = serializers.BooleanField(required=False, default=False)
    schema = serializers.ChoiceField(
        choices=Schema.choices,
        required=False,
        help_text="The task the file is for: a .txt for causal-lm or masked-lm stays plain text.",
    )
    encoding = serializers.CharField(required=False, allow_blank=True, default="")


class InspectSerializer(serializers.Serializer):
    format = serializers.CharField()
    encoding = serializers.CharField(allow_null=True)
    columns = serializers.ListField(child=serializers.CharField())
    sample = serializers.ListField(child=serializers.DictField())
    has_header = serializers.BooleanField(allow_null=True)
    delimiter = serializers.CharField(allow_null=True, help_text="tab, comma, semicolon, pipe.")
    sniffed = serializers.BooleanField(help_text="The format was read from the content.")
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
