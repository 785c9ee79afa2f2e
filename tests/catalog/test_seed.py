"""A fresh installation: the bootstrap gives the Demo team the three sample datasets."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from llmweb.catalog.models import Dataset
from tests.support import wait_dataset_settled as settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_bootstrap_seeds_the_demo_team_with_samples_that_become_ready(worker, monkeypatch):
    # The samples ship inside the package; nothing outside the repository is needed.
    monkeypatch.delenv("LLMWEB_SAMPLE_DATA", raising=False)
    out = io.StringIO()
    call_command("llmweb_bootstrap", admin_password="a fresh machine 1", stdout=out)
    demo = Dataset.objects.filter(team__name="Demo team")
    assert sorted(demo.values_list("name", flat=True)) == [
        "English-French (Tatoeba 5k)",
        "SMS spam",
        "Tiny Shakespeare",
    ]
    assert "missing" not in out.getvalue()
    ready = {d.name: settled(d.pk, timeout=240) for d in demo}
    assert {n: d.status for n, d in ready.items()} == dict.fromkeys(ready, "ready"), {
        n: d.error for n, d in ready.items()
    }
    assert sum(ready["SMS spam"].num_rows.values()) == 5574
    assert ready["SMS spam"].label_names == ["ham", "spam"]
    assert ready["English-French (Tatoeba 5k)"].mapping == {"source": "col_0", "target": "col_1"}
    # Running it again (every start does) adds nothing.
    call_command("llmweb_bootstrap", admin_password="a fresh machine 1", stdout=io.StringIO())
    assert Dataset.objects.filter(team__name="Demo team").count() == 3
