"""Serializers of the model registry API: records out, three kinds of creation in."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from llmweb.catalog.model_selectors import model_usable_for
from llmweb.catalog.models import RegisteredModel
from llmweb.catalog.services.models import MAX_CARD_CHARS
from llmweb.core.ids import ID_FIELD_BOUNDS


class DatasetRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()


class ModelSerializer(serializers.ModelSerializer):
    dataset = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    usable_for = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "id", "team", "name", "version", "status", "error", "task", "source",
            "architecture", "model_type", "num_parameters", "size_bytes", "dtype",
            "max_length", "tokenizer", "label_names", "usable_for", "config_summary", "metrics",
            "card", "bundled_name", "hub_id", "preset", "parent", "dataset", "job",
            "created_by", "created_at", "urls",
        ]  # fmt: skip
        read_only_fields = fields

    def get_usable_for(self, m: RegisteredModel) -> list[str]:
        """Dataset schemas a fine-tune job accepts this model for (the pre-flight's rule)."""
        return model_usable_for(model=m)

    @extend_schema_field(DatasetRefSerializer(allow_null=True))
    def get_dataset(self, m: RegisteredModel) -> dict | None:
        ds = m.dataset
        return {"id": ds.pk, "name": ds.name, "version": ds.version} if ds else None

    def get_created_by(self, m: RegisteredModel) -> str | None:
        return m.created_by.username if m.created_by_id and m.created_by else None

    def get_urls(self, m: RegisteredModel) -> dict[str, str]:
        return {
            "self": reverse("model-detail", args=[m.pk]),
            "download": reverse("model-download", args=[m.pk]),
            "lineage": reverse("model-lineage", args=[m.pk]),
            "page": f"/models/{m.pk}/",
        }


class ModelCardSerializer(serializers.Serializer):
    card = serializers.CharField(allow_blank=True, max_length=MAX_CARD_CHARS, trim_whitespace=False)


class _TeamField(serializers.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(
            required=False,
            help_text="Team id; defaults to your only (or first) team.",
            **ID_FIELD_BOUNDS,
            **kwargs,
        )


class ModelUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=".zip, .tar.gz or .tgz of a Hugging Face model folder (safetensors only)."
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=90)
    team = _TeamField()


class PresetCreateSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=["preset"])
    family = serializers.ChoiceField(choices=["gpt2", "bert", "t5"])
    size = serializers.ChoiceField(choices=["tiny", "mini", "small", "base"])
    name = serializers.CharField(required=False, allow_blank=True, max_length=90)
    vocab_size = serializers.IntegerField(
        required=False, allow_null=True, min_value=16, max_value=2**31 - 1
    )
    tokenizer_dataset = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="A ready dataset to train the tokenizer on.",
        **ID_FIELD_BOUNDS,
    )
    tokenizer_model = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="A ready model whose tokenizer to copy.",
        **ID_FIELD_BOUNDS,
    )
    team = _TeamField()


class HubCreateSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=["hub"])
    hub_id = serializers.CharField(max_length=200, help_text="e.g. distilbert-base-uncased")
    name = serializers.CharField(required=False, allow_blank=True, max_length=90)
    team = _TeamField()


class PresetRowSerializer(serializers.Serializer):
    family = serializers.CharField()
    size = serializers.CharField()
    name = serializers.CharField()
    task = serializers.CharField()
    tokenizer_kind = serializers.CharField()
    description = serializers.CharField()
    default_vocab_size = serializers.IntegerField()
    vocab_size = serializers.IntegerField()
    max_length = serializers.IntegerField()
    num_parameters = serializers.IntegerField()
    config = serializers.DictField()


class LineageNodeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    label = serializers.CharField()
    source = serializers.CharField()
    task = serializers.CharField()
    status = serializers.CharField()
    generation = serializers.IntegerField()
    current = serializers.BooleanField()


class LineageEdgeSerializer(serializers.Serializer):
    # "from" is a Python keyword, so the field is declared through the fields dict.
    to = serializers.IntegerField()
    dataset = serializers.DictField(allow_null=True)
    job = serializers.DictField(allow_null=True)
    label = serializers.CharField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField()
        return fields


class LineageSerializer(serializers.Serializer):
    root = serializers.IntegerField()
    current = serializers.IntegerField()
    nodes = LineageNodeSerializer(many=True)
    edges = LineageEdgeSerializer(many=True)
