"""Forms of the model pages; they only parse input, the services decide."""

from __future__ import annotations

from django import forms

from jobs.engine.presets import PRESETS, SIZES
from llmweb.catalog.models import Dataset, DatasetStatus, ModelStatus, RegisteredModel
from llmweb.catalog.services.models import MAX_CARD_CHARS

FAMILIES = [("gpt2", "GPT-2 (causal LM)"), ("bert", "BERT (masked LM)"), ("t5", "T5 (seq2seq)")]


class PresetForm(forms.Form):
    family = forms.ChoiceField(choices=FAMILIES)
    size = forms.ChoiceField(choices=[(s, s) for s in SIZES])
    name = forms.CharField(max_length=90, required=False, help_text="Default: family-size.")
    tokenizer = forms.ChoiceField(
        label="Tokenizer",
        help_text="Train a new tokenizer on a ready dataset of this team, or copy the tokenizer "
        "of another model.",
    )
    vocab_size = forms.IntegerField(
        required=False,
        min_value=100,
        max_value=256_000,
        help_text="Tokens to learn when training on a dataset (default: the preset's).",
    )

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        datasets = Dataset.objects.filter(team=team, status=DatasetStatus.READY).order_by("name")
        models = RegisteredModel.objects.filter(team=team, status=ModelStatus.READY).order_by(
            "name", "version"
        )
        self.model_vocab = {m.pk: (m.tokenizer or {}).get("vocab_size") for m in models}
        self.fields["tokenizer"].choices = [
            (
                "Train on a dataset",
                [(f"dataset:{d.pk}", f"{d.name} v{d.version}") for d in datasets],
            ),
            ("Copy from a model", [(f"model:{m.pk}", f"{m.name} v{m.version}") for m in models]),
        ]

    def clean(self):
        data = super().clean()
        if (data.get("family"), data.get("size")) not in PRESETS:
            raise forms.ValidationError("Pick a family and a size.")
        kind, _, pk = (data.get("tokenizer") or "").partition(":")
        data["tokenizer_kind"], data["tokenizer_id"] = kind, int(pk) if pk.isdigit() else None
        return data


class UploadForm(forms.Form):
    file = forms.FileField(
        help_text=".zip, .tar.gz or .tgz of a Hugging Face model folder: config.json, "
        "model.safetensors and tokenizer files. Pickled weights (.bin, .pt, .pkl, .ckpt) are "
        "refused."
    )
    name = forms.CharField(max_length=90, required=False, help_text="Default: the file name.")


class HubForm(forms.Form):
    hub_id = forms.CharField(
        max_length=200, label="Hub model id", help_text="e.g. distilbert-base-uncased"
    )
    name = forms.CharField(max_length=90, required=False)


class CardForm(forms.Form):
    card = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14}),
        required=False,
        max_length=MAX_CARD_CHARS,
        strip=False,
    )
