"""Model registry API: list, create (upload / preset / hub), card edits, delete, download."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.engine.presets import list_presets
from llmweb.accounts.selectors import can_write, team_get_for_user
from llmweb.api.common import DELETE_JOBS, query_flag, request_team
from llmweb.api.errors import error_response
from llmweb.api.models import serializers as ms
from llmweb.api.parsers import ObjectJSONParser
from llmweb.catalog import selectors
from llmweb.catalog.model_selectors import model_lineage, model_list_filtered
from llmweb.catalog.models import ModelStatus, RegisteredModel
from llmweb.catalog.services import models as services
from llmweb.catalog.services.model_facts import preset_param_count_exact

_CHUNK = 1 << 20


class _Sink:
    """A write-only file for ZipFile that hands out what was written so far.

    Without ``seek`` ZipFile writes data descriptors after each member, so the archive
    streams with only one chunk in memory at a time.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._buf += data
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


def iter_zip(folder: Path, prefix: str) -> Iterator[bytes]:
    """Stream ``folder`` as a zip (stored: safetensors do not compress) under ``prefix/``."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            info = zipfile.ZipInfo.from_file(
                path, f"{prefix}/{path.relative_to(folder).as_posix()}"
            )
            info.compress_type = zipfile.ZIP_STORED
            with open(path, "rb") as src, zf.open(info, "w") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


_LIST_PARAMS = [
    OpenApiParameter(
        "task", str, enum=["classification", "causal-lm", "seq2seq", "masked-lm", "encoder"]
    ),
    OpenApiParameter("source", str, enum=["bundled", "preset", "upload", "hub", "job"]),
    OpenApiParameter("status", str, enum=["pending", "ready", "failed"]),
    OpenApiParameter("team", int, description="Only this team's models."),
    OpenApiParameter(
        "ordering",
        str,
        description="created_at, -created_at, size_bytes, -size_bytes, num_parameters, "
        "-num_parameters, name, -name, or metric:<name> / -metric:<name>.",
    ),
]
_CREATE_JSON = PolymorphicProxySerializer(
    component_name="ModelCreate",
    serializers=[ms.PresetCreateSerializer, ms.HubCreateSerializer],
    resource_type_field_name="source",
)


class ModelViewSet(viewsets.GenericViewSet):
    """Models of your teams. Creation answers 202: a worker validates or builds the model;
    poll ``urls.self`` until ``status`` is ``ready`` or ``failed`` (then ``error`` says why)."""

    serializer_class = ms.ModelSerializer
    parser_classes = [ObjectJSONParser, MultiPartParser, FormParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = RegisteredModel.objects.none()

    def get_object(self) -> RegisteredModel:
        return selectors.model_get_for_user(user=self.request.user, model_id=self.kwargs["pk"])

    def _out(self, model: RegisteredModel, code: int = 200) -> Response:
        return Response(ms.ModelSerializer(model).data, status=code)

    @extend_schema(parameters=_LIST_PARAMS, responses=ms.ModelSerializer(many=True))
    def list(self, request):
        q = request.query_params
        team = team_get_for_user(user=request.user, team_id=q["team"]) if q.get("team") else None
        rows = model_list_filtered(
            user=request.user,
            team=team,
            task=q.get("task"),
            source=q.get("source"),
            status=q.get("status"),
            ordering=q.get("ordering"),
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ms.ModelSerializer(page, many=True).data)

    @extend_schema(responses=ms.ModelSerializer)
    def retrieve(self, request, pk=None):
        return self._out(self.get_object())

    @extend_schema(
        request={"multipart/form-data": ms.ModelUploadSerializer, "application/json": _CREATE_JSON},
        responses={202: ms.ModelSerializer},
        description="Multipart with `file`: upload an archive. JSON with `source: preset`: a new "
        "model from a preset (tokenizer from `tokenizer_dataset` or `tokenizer_model`). JSON "
        "with `source: hub`: download `hub_id` (only where the server allows the hub; "
        "otherwise 400).",
    )
    def create(self, request):
        if "file" in request.FILES or request.content_type.startswith("multipart/"):
            data = ms.ModelUploadSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            v = data.validated_data
            model = services.model_upload_create(
                user=request.user,
                team=request_team(request, v.get("team")),
                name=v.get("name"),
                uploaded_file=v["file"],
            )
        elif request.data.get("source") == "preset":
            data = ms.PresetCreateSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            v = data.validated_data
            user = request.user
            ds_id, model_id = v.get("tokenizer_dataset"), v.get("tokenizer_model")
            model = services.model_create_preset(
                user=user,
                team=request_team(request, v.get("team")),
                name=v.get("name"),
                family=v["family"],
                size=v["size"],
                vocab_size=v.get("vocab_size"),
                tokenizer_dataset=selectors.dataset_get_for_user(user=user, dataset_id=ds_id)
                if ds_id is not None
                else None,
                tokenizer_model=selectors.model_get_for_user(user=user, model_id=model_id)
                if model_id is not None
                else None,
            )
        elif request.data.get("source") == "hub":
            data = ms.HubCreateSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            v = data.validated_data
            model = services.model_register_hub(
                user=request.user,
                team=request_team(request, v.get("team")),
                name=v.get("name"),
                hub_id=v["hub_id"],
            )
        else:
            return error_response(
                "Send a multipart `file` to upload, or JSON with `source` set to `preset` or "
                "`hub`.",
                param="source",
            )
        model.refresh_from_db()
        response = self._out(model, status.HTTP_202_ACCEPTED)
        response["Location"] = response.data["urls"]["self"]
        return response

    @extend_schema(request=ms.ModelCardSerializer, responses=ms.ModelSerializer)
    def partial_update(self, request, pk=None):
        model = self.get_object()
        # Permission before validation: a viewer's write is 403 whatever the body says.
        if not can_write(user=request.user, team=model.team):
            raise PermissionDenied("Your role in this team is read-only.")
        data = ms.ModelCardSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.model_update_card(
            user=request.user, model=model, card=data.validated_data["card"]
        )
        return self._out(model)

    @extend_schema(
        parameters=[DELETE_JOBS],
        responses={204: None, 409: OpenApiTypes.OBJECT},
        description="409 `model_in_use` lists the jobs that read it in `jobs`; repeat with "
        "delete_jobs=true to delete those (finished) jobs with it.",
    )
    def destroy(self, request, pk=None):
        model = self.get_object()
        services.model_delete(
            user=request.user, model=model, delete_jobs=query_flag(request, "delete_jobs")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 409: OpenApiTypes.OBJECT}
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """The model folder as a zip, streamed."""
        model = self.get_object()
        folder = model.artifact_dir
        if model.status != ModelStatus.READY or not folder.is_dir():
            return error_response(
                f"{model} is {model.status}; only ready models can be downloaded.",
                code="not_ready",
                http_status=status.HTTP_409_CONFLICT,
            )
        stem = (
            re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model.name}-v{model.version}").strip("._")
            or "model"
        )
        response = StreamingHttpResponse(iter_zip(folder, stem), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{stem}.zip"'
        return response

    @extend_schema(responses=ms.LineageSerializer)
    @action(detail=True, methods=["get"])
    def lineage(self, request, pk=None):
        """Ancestors and descendants, with the dataset and job on each edge."""
        return Response(model_lineage(model=self.get_object()))


class PresetListApi(APIView):
    """Preset architectures with exact parameter counts for a vocabulary size."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "vocab_size",
                int,
                description="Count parameters for this vocabulary (default: each preset's own).",
            )
        ],
        responses=ms.PresetRowSerializer(many=True),
    )
    def get(self, request):
        raw = request.query_params.get("vocab_size")
        vocab = None
        if raw not in (None, ""):
            try:
                vocab = int(raw)
            except ValueError:
                vocab = -1
            if not 16 <= vocab <= services.MAX_VOCAB:
                return error_response(
                    f"vocab_size must be a whole number from 16 to {services.MAX_VOCAB:,}.",
                    param="vocab_size",
                )
        rows = list_presets(vocab, with_param_counts=False)
        for row in rows:
            row["num_parameters"] = preset_param_count_exact(
                row["family"], row["size"], row["vocab_size"]
            )
        return Response(rows)
