"""Checks before any GPU time, for every kind: inputs present, of the team, ready; then the
kind's own checks and estimate. Runs in the web process, so it must not import torch."""

from __future__ import annotations

from typing import Any

from jobs.errors import JobError
from jobs.kinds import Checked, Inputs, JobKind, get_kind


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


# --- chains: a follow-up job submitted with this job's result ----------------------------

THEN_KEYS = ("type", "params", "inputs")


def check_then(*, kind: JobKind, team: Any, then: Any) -> dict[str, Any] | None:
    """Check a chain's follow-up at submit, so a typo is a 400 now and not a silent
    non-start hours later: its kind, its params against that kind's table, and its other
    inputs (ids of this team's ready records). Its model input is left out: the first
    job's result fills it. Errors name ``then.params.<name>`` / ``then.inputs.<name>``.

    Returns the cleaned follow-up to store on the job, or None when there is none.
    """
    if then in (None, {}):
        return None
    if not isinstance(then, dict):
        raise JobError('then must be an object: {"type": ..., "params": {...}}.', param="then")
    unknown = sorted(set(then) - set(THEN_KEYS))
    if unknown:
        raise JobError(
            f"then takes {', '.join(THEN_KEYS)}, not {unknown[0]}.", param=f"then.{unknown[0]}"
        )
    if kind.produces != "model":
        raise JobError(
            f"A {kind.name} job makes no model, so no job can follow it.",
            code="invalid_then",
            param="then",
        )
    try:
        follow = get_kind(str(then.get("type") or ""))
    except JobError as exc:
        raise JobError(exc.message, code=exc.code, param="then.type") from None
    filled = follow.follow_up_input()
    if filled is None:
        raise JobError(
            f"A {follow.name} job reads no model, so it cannot take this job's result.",
            code="invalid_then",
            param="then.type",
        )
    try:
        params = follow.check_params(params=then.get("params") or {})
    except JobError as exc:
        param = f"then.params.{exc.param}" if exc.param != "params" else "then.params"
        raise JobError(
            f"The follow-up {follow.name} job: {exc.message}", code=exc.code, param=param
        ) from None
    raw = then.get("inputs") or {}
    then_inputs(kind=follow, team=team, raw=raw)
    return {"type": follow.name, "params": params, "inputs": dict(raw)}


def then_inputs(*, kind: JobKind, team: Any, raw: Any) -> dict[str, Any]:
    """A follow-up's inputs other than its model input, from ids to this team's records;
    an id of another team (or of nothing) reads as missing, naming the input."""
    from llmweb.catalog.models import Dataset, RegisteredModel

    if not isinstance(raw, dict):
        raise JobError("then.inputs must map input names to ids.", param="then.inputs")
    filled = kind.follow_up_input()
    specs = {spec.name: spec for spec in kind.inputs if spec is not filled}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        spec = specs.get(name)
        if spec is None:
            takes = ", ".join(specs) or "no other inputs"
            why = "is filled with this job's result" if filled and name == filled.name else ""
            raise JobError(
                f"The follow-up {kind.name} job's {name} {why or 'is not one of its inputs'}; "
                f"it takes {takes}.",
                code="unknown_input",
                param=f"then.inputs.{name}",
            )
        records = {"model": RegisteredModel, "dataset": Dataset}[spec.type].objects
        ids = value if spec.many and isinstance(value, list) else [value]
        found = []
        for pk in ids:
            record = (
                records.filter(team=team, pk=pk).first()
                if isinstance(pk, int) and not isinstance(pk, bool) and 0 < pk < 2**63
                else None
            )
            if record is None:
                raise JobError(
                    f"No {spec.type} with id {pk!r} in this team for the follow-up's {name}.",
                    code=f"invalid_{spec.type}",
                    param=f"then.inputs.{name}",
                )
            _check_record(record, spec.type, f"then.inputs.{name}", team)
            found.append(record)
        out[name] = found if spec.many else found[0]
    return out
