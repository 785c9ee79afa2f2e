"""The dataset upload form; it only parses input, the service decides."""

from __future__ import annotations

from django import forms

from llmweb.catalog.models import Schema
from llmweb.catalog.services.datasets import (
    DELIMITER_CHOICES,
    ENCODINGS,
    FORMATS,
    HEADER_CHOICES,
    TXT_MODES,
)


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV, TSV, JSON (array of objects), JSONL, Parquet, TXT, .dat or a .zip holding "
        "one. A .txt, .dat or extension-less file is read by its content (tab, comma, "
        "semicolon or | separated, JSON, or plain text).",
    )
    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="Default: the file name. Uploading under an existing name makes a new version.",
    )
    description = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )
    schema = forms.ChoiceField(choices=Schema.choices, label="Task schema")
    encoding = forms.ChoiceField(
        choices=list(ENCODINGS.items()),
        required=False,
        help_text="Leave on automatic unless you know better; a claimed encoding is checked.",
    )
    mapping = forms.CharField(
        required=False,
        widget=forms.HiddenInput(),
        help_text='JSON {"text": "column", ...}; filled in by the column pickers.',
    )
    split_ratios = forms.CharField(
        initial="0.8,0.1,0.1",
        required=False,
        label="Split ratios (train, validation, test)",
        help_text="Three numbers adding up to 1, e.g. 0.8,0.1,0.1.",
    )
    seed = forms.IntegerField(initial=42, required=False, help_text="Same seed, same split.")
    stratify = forms.BooleanField(
        initial=True,
        required=False,
        help_text="Keep each label's share equal across splits (classification schemas).",
    )
    txt_mode = forms.ChoiceField(
        choices=list(TXT_MODES.items()),
        label="Plain-text files",
        help_text="For .txt uploads: one example per line, or one corpus cut into blocks.",
    )
    format = forms.ChoiceField(
        choices=list(FORMATS.items()),
        required=False,
        label="Format",
        help_text="Leave on detect unless the preview reads the file wrong.",
    )
    delimiter = forms.ChoiceField(choices=list(DELIMITER_CHOICES.items()), required=False)
    has_header = forms.ChoiceField(
        choices=list(HEADER_CHOICES.items()), required=False, label="Header row"
    )
