"""Reads of models beyond get/list: filtered and sorted lists, and lineage graphs.

Scoping stays in ``llmweb.catalog.selectors`` (membership); everything here starts
from a queryset or a record those selectors returned.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet

from llmweb.catalog.models import ModelSource, ModelTask, RegisteredModel
from llmweb.catalog.selectors import model_list_for_user
from llmweb.core.errors import DomainError

ORDERINGS = (
    "created_at",
    "-created_at",
    "size_bytes",
    "-size_bytes",
    "num_parameters",
    "-num_parameters",
    "name",
    "-name",
)
MAX_LINEAGE_NODES = 200
# Models made before edges carried a kind: the job type says which edge it was.
EDGE_BY_JOB_TYPE = {"finetune": "fine-tuned from", "pretrain": "pretrained from"}


def model_usable_for(*, model: RegisteredModel) -> list[str]:
    """The dataset schemas a job accepts this model for, by the pre-flight's own rule.

    An architecture can often be loaded for more (a GPT-2 has a classification head
    class), but a job checks the model's task against the dataset's schema; the page
    and the API must promise what the job will accept, not what transformers could load.
    """
    from jobs.kinds.training import COMPATIBLE

    if not model.task:
        return []
    return [schema for schema, tasks in COMPATIBLE.items() if model.task in tasks]


def model_list_filtered(
    *,
    user,
    team=None,
    task: str | None = None,
    source: str | None = None,
    status: str | None = None,
    ordering: str | None = None,
) -> QuerySet[RegisteredModel] | list[RegisteredModel]:
    """The user's models, filtered; a metric ordering returns a list sorted in Python.

    ``ordering`` is one of ``ORDERINGS`` or ``metric:<name>`` / ``-metric:<name>``;
    models without that metric come last either way.
    """
    qs = model_list_for_user(user=user, team=team).select_related(
        "team", "parent", "dataset", "created_by"
    )
    if task:
        if task not in ModelTask.values:
            raise DomainError(f"task must be one of {', '.join(ModelTask.values)}.", param="task")
        qs = qs.filter(task=task)
    if source:
        if source not in ModelSource.values:
            raise DomainError(
                f"source must be one of {', '.join(ModelSource.values)}.", param="source"
            )
        qs = qs.filter(source=source)
    if status:
        qs = qs.filter(status=status)
    ordering = (ordering or "-created_at").strip()
    metric = ordering.lstrip("-")
    if metric.startswith("metric:"):
        name = metric[len("metric:") :]
        if not name:
            raise DomainError("Name the metric: ordering=metric:accuracy.", param="ordering")
        desc = ordering.startswith("-")
        rows = list(qs)
        have = [m for m in rows if _number(m.metrics.get(name)) is not None]
        have.sort(key=lambda m: _number(m.metrics.get(name)), reverse=desc)
        return have + [m for m in rows if _number(m.metrics.get(name)) is None]
    if ordering not in ORDERINGS:
        raise DomainError(
            f"ordering must be one of {', '.join(ORDERINGS)} or metric:<name>.", param="ordering"
        )
    # Pending models have no size yet; they sort last whichever way.
    field = F(ordering.lstrip("-"))
    key = field.desc(nulls_last=True) if ordering.startswith("-") else field.asc(nulls_last=True)
    return qs.order_by(key, "-id")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def metric_names(models: list[RegisteredModel] | QuerySet[RegisteredModel]) -> list[str]:
    """Numeric metric names present on any of these models, for a sort menu."""
    names: set[str] = set()
    for m in models:
        names.update(k for k, v in (m.metrics or {}).items() if _number(v) is not None)
    return sorted(names)


def _node(m: RegisteredModel, generation: int, current: RegisteredModel) -> dict[str, Any]:
    return {
        "id": m.pk,
        "name": m.name,
        "version": m.version,
        "label": f"{m.name} v{m.version}",
        "source": m.source,
        "task": m.task,
        "status": m.status,
        "generation": generation,
        "current": m.pk == current.pk,
    }


def _edge(child: RegisteredModel) -> dict[str, Any]:
    ds = child.dataset
    job = child.job
    dataset = {"id": ds.pk, "label": f"{ds.name} v{ds.version}"} if ds else None
    job_info = {"id": job.pk, "type": job.type, "label": f"#{job.pk} {job.type}"} if job else None
    kind = child.lineage_edge or (EDGE_BY_JOB_TYPE.get(job.type, "") if job else "")
    parts = [p["label"] for p in (dataset, job_info) if p]
    return {
        "from": child.parent_id,
        "to": child.pk,
        "kind": kind,
        "dataset": dataset,
        "job": job_info,
        "label": " · ".join([kind, *parts] if kind else parts),
    }


def model_lineage(*, model: RegisteredModel) -> dict[str, Any]:
    """Ancestors up to the root and all descendants, with dataset and job on each edge.

    Returns ``{"root": id, "current": id, "nodes": [...], "edges": [...]}``; a node's
    ``generation`` is its distance from the root. Lineage never leaves the model's team.
    """
    rel = ("dataset", "job", "parent")
    qs = RegisteredModel.objects.filter(team_id=model.team_id).select_related(*rel)
    chain = [qs.get(pk=model.pk)]
    seen = {model.pk}
    while chain[-1].parent_id and chain[-1].parent_id not in seen and len(chain) < 100:
        parent = qs.filter(pk=chain[-1].parent_id).first()
        if parent is None:
            break
        seen.add(parent.pk)
        chain.append(parent)
    chain.reverse()  # root first
    nodes = [_node(m, g, model) for g, m in enumerate(chain)]
    edges = [_edge(m) for m in chain[1:]]
    frontier = [chain[-1]]
    generation = len(chain) - 1
    while frontier and len(nodes) < MAX_LINEAGE_NODES:
        generation += 1
        children = list(
            qs.filter(parent__in=[m.pk for m in frontier]).exclude(pk__in=seen).order_by("pk")
        )
        children = children[: MAX_LINEAGE_NODES - len(nodes)]
        for child in children:
            seen.add(child.pk)
            nodes.append(_node(child, generation, model))
            edges.append(_edge(child))
        frontier = children
    return {"root": chain[0].pk, "current": model.pk, "nodes": nodes, "edges": edges}
