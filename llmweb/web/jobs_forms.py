"""The job form is built from the engine's parameter table, so form and API agree."""

from __future__ import annotations

from typing import Any

from django import forms

from jobs.engine.train_config import param_schema

# Shown up front; the rest sit under "Advanced".
BASIC = ("epochs", "max_steps", "learning_rate", "batch_size", "max_length", "method")


def _field(name: str, spec: dict[str, Any]) -> forms.Field:
    kind, default, help_text = spec["type"], spec["default"], spec.get("help", "")
    common = {"required": False, "help_text": help_text, "label": name.replace("_", " ")}
    if spec.get("choices"):
        return forms.ChoiceField(
            choices=[(c, c) for c in spec["choices"]], initial=default, **common
        )
    if kind == "bool":
        return forms.BooleanField(initial=default, **common)
    if kind == "int":
        return forms.IntegerField(
            initial=default, min_value=spec.get("min"), max_value=spec.get("max"), **common
        )
    if kind == "float":
        return forms.FloatField(initial=default, max_value=spec.get("max"), **common)
    if kind == "list[str]":
        return forms.CharField(initial="", **common)
    return forms.CharField(initial=default, **common)


class JobForm(forms.Form):
    type = forms.ChoiceField(
        choices=[("finetune", "Fine-tune"), ("pretrain", "Pretrain from scratch")]
    )
    base_model = forms.ModelChoiceField(queryset=None, empty_label=None)
    dataset = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=100, required=False)

    def __init__(self, *args, models=None, datasets=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].queryset = models
        self.fields["dataset"].queryset = datasets
        self.schema = param_schema()
        for name, spec in self.schema.items():
            self.fields[f"p_{name}"] = _field(name, spec)

    def basic_fields(self):
        return [self[f"p_{n}"] for n in BASIC if f"p_{n}" in self.fields]

    def advanced_fields(self):
        return [self[f"p_{n}"] for n in self.schema if n not in BASIC]

    def params(self) -> dict[str, Any]:
        """Only what the person set or changed; the engine fills the defaults."""
        out: dict[str, Any] = {}
        for name, spec in self.schema.items():
            value = self.cleaned_data.get(f"p_{name}")
            if spec["type"] == "bool":
                if value != spec["default"]:
                    out[name] = bool(value)
                continue
            if value in (None, ""):
                continue
            if spec["type"] == "list[str]":
                value = [v.strip() for v in str(value).split(",") if v.strip()] or None
                if value is None:
                    continue
            out[name] = value
        return out
