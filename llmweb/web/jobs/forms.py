"""The New-job form is built from the job-kinds registry: every kind's inputs and
parameter table become fields tagged with the kinds that use them, and one generic
script shows the fields of the chosen kind. No per-kind template logic."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from jobs.engine.params import Param
from jobs.kinds import JobKind, all_kinds, get_kind


def _param_field(
    name: str, spec: Param, options: dict[str, list[str]] | None = None
) -> forms.Field:
    """The form field of one parameter. ``options`` (record id -> values) turns a param
    with ``options_from`` into a select that the page refills when that input changes."""
    label = spec.label or name.replace("_", " ")
    common = {"required": False, "help_text": spec.help, "label": label}
    if spec.options_from and options is not None:
        values = sorted({v for vs in options.values() for v in vs})
        widget = forms.Select(
            choices=[("", "—"), *[(v, v) for v in values]],
            attrs={"data-options-from": spec.options_from, "data-options": json.dumps(options)},
        )
        return forms.CharField(initial=spec.default or "", widget=widget, **common)
    if spec.choices:
        return forms.ChoiceField(
            choices=[(c, c) for c in spec.choices], initial=spec.default, **common
        )
    if spec.type == "bool":
        return forms.BooleanField(initial=spec.default, **common)
    if spec.type == "int":
        return forms.IntegerField(
            initial=spec.default, min_value=spec.min, max_value=spec.max, **common
        )
    if spec.type == "float":
        return forms.FloatField(initial=spec.default, max_value=spec.max, **common)
    if spec.type == "list[str]":
        return forms.CharField(initial="", **common)
    return forms.CharField(initial=spec.default, **common)


def _options(source: str | None, datasets: Any) -> dict[str, list[str]] | None:
    """Values a param can take per record of the input it draws on (dataset id -> its
    extra columns), or None when the param draws on nothing."""
    if source != "dataset" or datasets is None:
        return None
    return {str(ds.pk): ds.extra_columns for ds in datasets}


def follow_up_kinds(kinds: list[JobKind]) -> list[JobKind]:
    """Kinds the form offers as a chain's second job: those that run on a model alone
    (their other inputs optional), so the form needs no second set of required pickers.
    The API takes any kind with a model input."""
    out = []
    for kind in kinds:
        filled = kind.follow_up_input()
        if filled is not None and not any(s.required for s in kind.inputs if s is not filled):
            out.append(kind)
    return out


class JobForm(forms.Form):
    type = forms.ChoiceField(label="Kind")
    name = forms.CharField(max_length=100, required=False)
    then = forms.ChoiceField(
        label="Then",
        required=False,
        help_text="A second job, started with this job's result model when it succeeds.",
    )

    def __init__(self, *args, models=None, datasets=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kinds: list[JobKind] = all_kinds()
        self.fields["type"].choices = [(kind.name, kind.label) for kind in self.kinds]
        self.fields["type"].widget.attrs["data-kind-select"] = "1"
        # name -> [kinds that use it]; the order of first appearance is the page order.
        self._input_kinds: dict[str, list[str]] = {}
        self._param_kinds: dict[str, list[str]] = {}
        self._basic: set[str] = set()
        defaults: dict[str, dict[str, Any]] = {}
        for kind in self.kinds:
            for spec in kind.inputs:
                self._input_kinds.setdefault(spec.name, []).append(kind.name)
                if spec.name in self.fields:
                    continue
                queryset = models if spec.type == "model" else datasets
                field_class = (
                    forms.ModelMultipleChoiceField if spec.many else forms.ModelChoiceField
                )
                extra = {} if spec.many else {"empty_label": "—"}
                self.fields[spec.name] = field_class(
                    queryset=queryset,
                    required=False,
                    label=spec.label or spec.name.replace("_", " "),
                    help_text=spec.help,
                    **extra,
                )
                self.fields[spec.name].widget.attrs["data-input"] = spec.name
                self.fields[spec.name].widget.attrs["data-input-type"] = spec.type
            for name, spec in kind.param_table().items():
                self._param_kinds.setdefault(name, []).append(kind.name)
                defaults.setdefault(name, {})[kind.name] = spec.default
                if spec.basic:
                    self._basic.add(name)
                if f"p_{name}" not in self.fields:
                    self.fields[f"p_{name}"] = _param_field(
                        name, spec, _options(spec.options_from, datasets)
                    )
                elif spec.choices and hasattr(self.fields[f"p_{name}"], "choices"):
                    # Two kinds share a name with different choices (fine-tune's method
                    # full/lora, compress's dynamic-int8/...): offer all; the chosen kind's
                    # own table validates the value on submit.
                    field = self.fields[f"p_{name}"]
                    known = [value for value, _ in field.choices]
                    field.choices = [
                        *field.choices,
                        *[(c, c) for c in spec.choices if c not in known],
                    ]
        for name, by_kind in defaults.items():
            self.fields[f"p_{name}"].widget.attrs["data-defaults"] = json.dumps(by_kind)
        self._add_then_fields(models=models, datasets=datasets)

    def _add_then_fields(self, *, models, datasets) -> None:
        """The chain section: ``then`` picks the follow-up kind; ``then_in_<input>`` and
        ``then_p_<param>`` are its other inputs and its parameter table (defaults shown)."""
        self.makers = " ".join(kind.name for kind in self.kinds if kind.produces == "model")
        self.follow_kinds = follow_up_kinds(self.kinds)
        self.fields["then"].choices = [
            ("", "nothing"),
            *[(kind.name, f"{kind.label} the result") for kind in self.follow_kinds],
        ]
        self._then_fields: dict[str, list[str]] = {}
        for kind in self.follow_kinds:
            filled = kind.follow_up_input()
            for spec in kind.inputs:
                if spec is filled or spec.many:
                    continue
                key = f"then_in_{spec.name}"
                self._then_fields.setdefault(key, []).append(kind.name)
                if key not in self.fields:
                    self.fields[key] = forms.ModelChoiceField(
                        queryset=models if spec.type == "model" else datasets,
                        required=False,
                        empty_label="—",
                        label=spec.label or spec.name.replace("_", " "),
                        help_text=spec.help,
                    )
            for name, spec in kind.param_table().items():
                key = f"then_p_{name}"
                self._then_fields.setdefault(key, []).append(kind.name)
                if key not in self.fields:
                    self.fields[key] = _param_field(name, spec)

    # --- layout: (bound field, "kind kind ...") pairs for the template -----------------

    def input_rows(self) -> list[tuple[Any, str]]:
        return [(self[name], " ".join(kinds)) for name, kinds in self._input_kinds.items()]

    def basic_rows(self) -> list[tuple[Any, str]]:
        return [
            (self[f"p_{name}"], " ".join(kinds))
            for name, kinds in self._param_kinds.items()
            if name in self._basic
        ]

    def advanced_rows(self) -> list[tuple[Any, str]]:
        return [
            (self[f"p_{name}"], " ".join(kinds))
            for name, kinds in self._param_kinds.items()
            if name not in self._basic
        ]

    def then_rows(self) -> list[tuple[Any, str]]:
        return [(self[key], " ".join(kinds)) for key, kinds in self._then_fields.items()]

    # --- what the submission says ----------------------------------------------------

    def then_value(self) -> dict[str, Any] | None:
        """The follow-up as ``job_submit`` takes it, or None when "nothing" is chosen."""
        name = self.cleaned_data.get("then")
        if not name:
            return None
        kind = get_kind(name)
        inputs = {}
        for spec in kind.inputs:
            value = self.cleaned_data.get(f"then_in_{spec.name}")
            if value is not None:
                inputs[spec.name] = value.pk
        params = _changed(kind, lambda param: self.cleaned_data.get(f"then_p_{param}"))
        return {"type": kind.name, "params": params, "inputs": inputs}

    def field_for(self, param: str | None) -> str | None:
        """The form field a refusal's ``param`` names (``then.params.x`` -> ``then_p_x``)."""
        if not param:
            return None
        for prefix, field in (("then.params.", "then_p_"), ("then.inputs.", "then_in_")):
            if param.startswith(prefix):
                key = field + param.removeprefix(prefix)
                return key if key in self.fields else "then"
        if param.startswith("then"):
            return "then"
        if f"p_{param}" in self.fields:
            return f"p_{param}"
        return param if param in self.fields else None

    def kind(self) -> JobKind:
        return get_kind(self.cleaned_data["type"])

    def inputs(self) -> dict[str, Any]:
        out = {}
        for spec in self.kind().inputs:
            value = self.cleaned_data.get(spec.name)
            out[spec.name] = list(value) if spec.many and value is not None else value
        return out

    def params(self) -> dict[str, Any]:
        """Only what the person set or changed, for the chosen kind; it fills the defaults."""
        return _changed(self.kind(), lambda name: self.cleaned_data.get(f"p_{name}"))


def _changed(kind: JobKind, value_of) -> dict[str, Any]:
    """A kind's params as a form posted them: empty fields left to the defaults, a
    checkbox only when it differs from its default (an unticked box posts nothing)."""
    out: dict[str, Any] = {}
    for name, spec in kind.param_table().items():
        value = value_of(name)
        if spec.type == "bool":
            if value != spec.default:
                out[name] = bool(value)
            continue
        if value in (None, ""):
            continue
        if spec.type == "list[str]":
            value = [v.strip() for v in str(value).split(",") if v.strip()] or None
            if value is None:
                continue
        out[name] = value
    return out
