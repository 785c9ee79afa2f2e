"""Dataset API: list, upload, inspect, detail, delete, rows preview, stats and downloads."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from llmweb.accounts.selectors import team_get_for_user
from llmweb.api.common import DELETE_JOBS, query_flag, request_team
from llmweb.api.datasets import serializers as ds_s
from llmweb.api.errors import error_response
from llmweb.catalog import dataset_files, selectors
from llmweb.catalog.models import Dataset, DatasetStatus, Schema
from llmweb.catalog.services import datasets as services

# Multipart framing around the file; a body longer than the limit plus this is refused unread.
MULTIPART_SLACK = 1 << 20
INSPECT_HEAD = 1 << 20


def _refuse_non_multipart(request) -> Response | None:
    if not (request.content_type or "").startswith("multipart/form-data"):
        return error_response(
            "Send the upload as multipart/form-data with the data in a `file` field "
            "(e.g. curl -F file=@data.csv -F schema=classification).",
            code="unsupported_media_type",
            http_status=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    limit = int(settings.LLMWEB_MAX_UPLOAD_BYTES)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit + MULTIPART_SLACK:
        raise services.DatasetUploadTooLarge(length, limit)
    return None


_LIST_PARAMS = [
    OpenApiParameter("schema", str, enum=Schema.values),
    OpenApiParameter("status", str, enum=DatasetStatus.values),
    OpenApiParameter("team", int, description="Only this team's datasets."),
    OpenApiParameter("search", str, description="Name contains (also `q`)."),
]
_SPLIT = OpenApiParameter(
    "split", str, enum=list(dataset_files.SPLITS), description="Default: train."
)


class DatasetViewSet(viewsets.GenericViewSet):
    """Datasets of your teams. An upload answers 201 with status ``uploaded``; a worker then
    processes it: poll ``urls.self`` until ``status`` is ``ready`` or ``failed`` (``error``
    says why, with row errors and line numbers)."""

    serializer_class = ds_s.DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]
    http_method_names = ["get", "post", "delete", "head", "options"]
    queryset = Dataset.objects.none()

    def perform_content_negotiation(self, request, force=False):
        # ``?format=jsonl|parquet`` of downloads is ours, not DRF's renderer override.
        return super().perform_content_negotiation(
            request, force=force or self.action == "download"
        )

    def get_object(self) -> Dataset:
        return selectors.dataset_get_for_user(user=self.request.user, dataset_id=self.kwargs["pk"])

    def _out(self, dataset: Dataset, code: int = 200) -> Response:
        return Response(ds_s.DatasetSerializer(dataset).data, status=code)

    @extend_schema(parameters=_LIST_PARAMS, responses=ds_s.DatasetSerializer(many=True))
    def list(self, request):
        q = request.query_params
        team = team_get_for_user(user=request.user, team_id=q["team"]) if q.get("team") else None
        rows = selectors.dataset_list_for_user(user=request.user, team=team).select_related(
            "created_by"
        )
        if q.get("schema"):
            rows = rows.filter(schema=q["schema"])
        if q.get("status"):
            rows = rows.filter(status=q["status"])
        if term := (q.get("search") or q.get("q") or "").strip():
            rows = rows.filter(Q(name__icontains=term) | Q(description__icontains=term))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ds_s.DatasetSerializer(page, many=True).data)

    @extend_schema(responses=ds_s.DatasetSerializer)
    def retrieve(self, request, pk=None):
        return self._out(self.get_object())

    @extend_schema(
        request={"multipart/form-data": ds_s.DatasetUploadSerializer},
        responses={201: ds_s.DatasetSerializer, 413: OpenApiTypes.OBJECT, 415: OpenApiTypes.OBJECT},
        description="Upload a data file. Fields: file, schema, name, description, mapping (JSON), "
        "split_ratios, seed, stratify, encoding, txt_mode, format, delimiter, has_header, team. "
        "A binary file, or one whose columns cannot fill the schema, is refused with 400 and "
        "nothing is stored.",
    )
    def create(self, request):
        if refused := _refuse_non_multipart(request):
            return refused
        try:
            files = request.FILES
        except (ParseError, UnsupportedMediaType) as exc:
            return error_response(f"The upload could not be read: {exc.detail}", code="bad_upload")
        if "file" not in files:
            return error_response(
                "No file was sent; put the data in a multipart field called `file`.",
                code="missing_file",
                param="file",
            )
        data = ds_s.DatasetUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dataset = services.dataset_upload_create(
            user=request.user,
            team=request_team(request, v.get("team")),
            name=v.get("name"),  # absent: the file name; blank: refused
            uploaded_file=v["file"],
            schema=v["schema"],
            description=v.get("description") or "",
            mapping=v.get("mapping") or None,
            split_ratios=v.get("split_ratios") or None,
            seed=v.get("seed", 42),
            stratify=v.get("stratify", True),
            encoding=v.get("encoding") or "",
            txt_mode=v.get("txt_mode") or "lines",
            fmt=v.get("format") or None,
            delimiter=v.get("delimiter") or None,
            has_header=v.get("has_header") or None,
        )
        dataset.refresh_from_db()
        response = self._out(dataset, status.HTTP_201_CREATED)
        response["Location"] = response.data["urls"]["self"]
        return response

    @extend_schema(
        parameters=[DELETE_JOBS],
        responses={204: None, 403: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        description="409 `dataset_in_use` lists the jobs that used it in `jobs`; repeat with "
        "delete_jobs=true to delete those (finished) jobs with it.",
    )
    def destroy(self, request, pk=None):
        services.dataset_delete(
            user=request.user,
            dataset=self.get_object(),
            delete_jobs=query_flag(request, "delete_jobs"),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={202: ds_s.DatasetSerializer, 409: OpenApiTypes.OBJECT},
        description="Make a clean version: a new version of this (ready) dataset without exact "
        "duplicate rows and without validation/test rows whose input is also in train. "
        "Answers 202 with the new record; a worker fills it (poll `urls.self`); "
        "`derived_from` and `lineage_note` say where it came from and what was removed.",
    )
    @action(detail=True, methods=["post"])
    def clean(self, request, pk=None):
        clean = services.dataset_clean_version_create(user=request.user, dataset=self.get_object())
        clean.refresh_from_db()
        return self._out(clean, status.HTTP_202_ACCEPTED)

    @extend_schema(
        request={"multipart/form-data": ds_s.InspectRequestSerializer},
        responses={200: ds_s.InspectSerializer, 400: OpenApiTypes.OBJECT},
        description="Detect format, encoding, columns and sample rows of a file and suggest a "
        "column mapping for every schema. Nothing is stored. Send the first MiB of a text "
        "file with partial=true to save bandwidth.",
    )
    @action(detail=False, methods=["post"])
    def inspect(self, request):
        if refused := _refuse_non_multipart(request):
            return refused
        upload = request.FILES.get("file")
        if upload is None:
            return error_response("No file was sent in the `file` field.", param="file")
        filename = services.clean_filename(upload.name)
        partial = str(request.data.get("partial", "")).lower() in ("1", "true", "on", "yes")
        options = services.parse_read_options(
            fmt=request.data.get("format"),
            delimiter=request.data.get("delimiter"),
            has_header=request.data.get("has_header"),
        )
        if request.data.get("schema") in Schema.values:  # a language-model file stays text
            options["schema"] = request.data["schema"]
        tmp_root = Path(settings.STORAGE_DIR) / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".inspect-", dir=tmp_root))
        try:
            path = folder / filename
            written = 0
            with open(path, "wb") as out:
                for chunk in upload.chunks(1 << 20):
                    written += len(chunk)
                    if written > settings.LLMWEB_MAX_UPLOAD_BYTES:
                        raise services.DatasetUploadTooLarge(
                            upload.size or written, settings.LLMWEB_MAX_UPLOAD_BYTES
                        )
                    out.write(chunk)
            if partial and written >= INSPECT_HEAD:
                dataset_files.trim_partial(path)
            info = dataset_files.inspect_upload(
                path, encoding=request.data.get("encoding") or "", options=options
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if "error" in info:
            err = info["error"]
            return error_response(err["message"], code=err.get("code", "invalid"), param="file")
        return Response(info)

    @extend_schema(
        parameters=[
            _SPLIT,
            OpenApiParameter("page", int, description="1-based; 50 rows a page."),
            OpenApiParameter(
                "q", str, description="Only rows whose text contains this (any case)."
            ),
        ],
        responses=ds_s.RowsPageSerializer,
    )
    @action(detail=True, methods=["get"])
    def rows(self, request, pk=None):
        dataset = self.get_object()
        q = request.query_params
        try:
            page = int(q.get("page") or 1)
        except ValueError:
            return error_response("page must be a whole number from 1.", param="page")
        body = dataset_files.rows_page(dataset, split=q.get("split"), page=page, q=q.get("q", ""))
        return Response(body)

    @extend_schema(responses=ds_s.StatsSerializer)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """Rows per split, label distribution, length histograms (characters and tokens),
        empty texts, exact and near duplicates, train/test overlap and imbalance."""
        ds = self.get_object()
        return Response(
            {
                "id": ds.pk,
                "status": ds.status,
                "num_rows": ds.num_rows or {},
                "label_names": ds.label_names,
                "warnings": ds.warnings or [],
                "stats": ds.stats or {},
            }
        )

    @extend_schema(
        parameters=[_SPLIT, OpenApiParameter("format", str, enum=["jsonl", "parquet"])],
        responses={
            (200, "application/jsonl"): OpenApiTypes.BINARY,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            409: OpenApiTypes.OBJECT,
        },
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """A processed split as JSON lines (labels as names) or Parquet, streamed."""
        dataset = self.get_object()
        fmt = request.query_params.get("format") or "jsonl"
        if fmt not in ("jsonl", "parquet"):
            return error_response("format must be jsonl or parquet.", param="format")
        split = dataset_files.clean_split(request.query_params.get("split"))
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset.name}-v{dataset.version}-{split}")
        if fmt == "parquet":
            handle = dataset_files.parquet_file(dataset, split)
            return FileResponse(
                handle,
                as_attachment=True,
                filename=f"{stem}.parquet",
                content_type="application/vnd.apache.parquet",
            )
        response = StreamingHttpResponse(
            dataset_files.iter_jsonl(dataset, split), content_type="application/jsonl"
        )
        response["Content-Disposition"] = f'attachment; filename="{stem}.jsonl"'
        return response
