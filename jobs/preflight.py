"""Checks before any GPU time, for every kind: inputs present, of the team, ready; then the
kind's own checks and estimate. Runs in the web process, so it must not import torch."""

from __future__ import annotations

from typing import Any

from jobs.errors import JobError
from jobs.kinds import Checked, Inputs, JobKind


def check(*, kind: JobKind, team: Any, inputs: dict[str, Any], params: Any) -> Checked:
    """Refuse with a :class:`JobError` naming the input or param at fault, else the
    cleaned params and the estimate.

    ``inputs`` maps the kind's input names (``base_model``, ``dataset``, ...) to records
    (a list of records for ``many`` inputs); ids of other teams must already read as
    missing (the caller scopes them).
    """
    if not isinstance(params, dict):
        raise JobError("params must be a JSON object of parameter names to values.", param="params")
    unknown = sorted(set(inputs) - {spec.name for spec in kind.inputs})
    unknown = [name for name in unknown if inputs[name] not in (None, [], ())]
    if unknown:
        raise JobError(
            f"A {kind.name} job takes no {unknown[0]}; it takes "
            f"{', '.join(spec.name for spec in kind.inputs)}.",
            code="unknown_input",
            param=unknown[0],
        )
    resolved = Inputs()
    for spec in kind.inputs:
        value = inputs.get(spec.name)
        items = list(value or []) if spec.many else ([] if value is None else [value])
        if not items:
            if spec.required:
                raise JobError(
                    f"Choose a {spec.type} of this team for {spec.label or spec.name}.",
                    code=f"invalid_{spec.type}",
                    param=spec.name,
                )
            resolved.specs.append((spec, [] if spec.many else None))
            continue
        if spec.many and len(items) > spec.max_items:
            raise JobError(
                f"At most {spec.max_items} {spec.type}s for {spec.name}, got {len(items)}.",
                code="too_many",
                param=spec.name,
            )
        for item in items:
            _check_record(item, spec.type, spec.name, team)
        resolved.specs.append((spec, items if spec.many else items[0]))
    checked = kind.check(team=team, inputs=resolved, params=params)
    checked.models, checked.datasets = resolved.models(), resolved.datasets()
    return checked


def _check_record(record: Any, type_: str, name: str, team: Any) -> None:
    if record is None or record.team_id != team.pk:
        raise JobError(f"Choose a {type_} of this team.", code=f"invalid_{type_}", param=name)
    if record.status == "ready":
        return
    if record.status == "failed":
        why = (record.error or {}).get("message") if isinstance(record.error, dict) else None
        raise JobError(
            f"{type_.capitalize()} {record} failed"
            + (f": {why}" if why else "")
            + ". Pick another one, or upload it again.",
            code=f"{type_}_failed",
            param=name,
        )
    raise JobError(
        f"{type_.capitalize()} {record} is {record.status}; wait until it is ready.",
        code=f"{type_}_not_ready",
        param=name,
    )
