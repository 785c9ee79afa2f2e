"""The New-job form is built from the job-kinds registry: every kind's inputs and
parameter table become fields tagged with the kinds that use them, and one generic
script shows the fields of the chosen kind. No per-kind template logic."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from jobs.engine.params import Param
from jobs.kinds import JobKind, all_kinds, get_kind


def _param_field(name: str, spec: Param) -> forms.Field:
    common = {"required": False, "help_text": spec.help, "label": name.replace("_", " ")}
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


class JobForm(forms.Form):
    type = forms.ChoiceField(label="Kind")
    name = forms.CharField(max_length=100, required=False)

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
                    self.fields[f"p_{name}"] = _param_field(name, spec)
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

    # --- what the submission says ----------------------------------------------------

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
        out: dict[str, Any] = {}
        for name, spec in self.kind().param_table().items():
            value = self.cleaned_data.get(f"p_{name}")
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
