"""Small data files and helpers for the dataset tests (generated into tmp_path)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from llmweb.catalog.models import Dataset
from tests.support import wait_for


def labelled(n: int, *, sep: str = ",") -> list[str]:
    return [
        f"message number {i} says hello{sep}{'spam' if i % 4 == 0 else 'ham'}" for i in range(n)
    ]


def csv_bytes(n: int = 60) -> bytes:
    return ("text,label\n" + "\n".join(labelled(n)) + "\n").encode()


def records(n: int = 60) -> list[dict]:
    return [{"text": f"row {i} has words", "label": "pos" if i % 3 else "neg"} for i in range(n)]


def upload_file(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)


def post_dataset(
    client, filename: str, content: bytes, *, schema: str = "classification", **fields
):
    data = {"file": upload_file(filename, content), "schema": schema, **fields}
    return client.post("/api/v1/datasets/", data, format="multipart")


def settled(dataset_id: int, timeout: float = 90) -> Dataset:
    def check():
        d = Dataset.objects.get(pk=dataset_id)
        return d if d.status in ("ready", "failed") else None

    return wait_for(check, timeout=timeout, interval=0.2, what=f"dataset {dataset_id} to settle")


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def zip_bytes(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16) | 0x10  # a symlink in the unix mode bits
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def process_now(dataset: Dataset) -> Dataset:
    """Run the engine in this process and record the outcome (for tests of reads)."""
    from jobs.engine.data import ProcessConfig, process_dataset
    from llmweb.catalog.services.datasets import dataset_mark_ready

    Dataset.objects.filter(pk=dataset.pk).update(status="processing")
    result = process_dataset(
        ProcessConfig(
            source=dataset.upload_path,
            out_dir=dataset.processed_dir,
            schema=dataset.schema,
            split_ratios=tuple(dataset.split_ratios),
            seed=dataset.seed,
            mapping=dataset.mapping,
        )
    )
    return dataset_mark_ready(dataset_id=dataset.pk, result=result.as_dict())
