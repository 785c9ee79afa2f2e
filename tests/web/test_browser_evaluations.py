"""A person evaluates two models from the New-job form, compares them, and drills into
the samples of one confusion-matrix cell, in headless Chromium against the real stack."""

from __future__ import annotations

import re

import pytest

from jobs.models import Job
from llmweb.catalog.models import RegisteredModel
from llmweb.evaluations.models import Evaluation
from tests.factories import (
    classifier_model,
    evaluation_with_samples,
    generations,
    job_record,
    ready_dataset,
    sms_rows,
    training_history,
)
from tests.support import browser_login, wait_for

# True once the canvas has any painted pixel: Chart.js drew something.
PAINTED = """() => {
  const c = document.getElementById("curves-chart");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i]) return true;
  return false;
}"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_evaluate_two_models_compare_them_and_filter_samples_by_a_cell(
    browser_page, live_server_proc, worker, alice, team
):
    page, base = browser_page, live_server_proc.url
    sms = ready_dataset(team, "classification", sms_rows(60), name="sms")
    small = classifier_model(team, ["ham", "spam"], name="small", seed=1, hidden=16)
    large = classifier_model(team, ["spam", "ham"], name="large", seed=2, hidden=64)
    browser_login(page, base, "alice")

    page.goto(base + "/jobs/new/?type=evaluate")
    page.select_option("#id_type", "evaluate")
    page.select_option("#id_models", [str(small.pk), str(large.pk)])
    page.select_option("#id_dataset", str(sms.pk))
    page.fill("#id_p_max_length", "32")
    page.click("#job-form details summary")  # the timing knobs are advanced parameters
    page.fill("#id_p_latency_runs", "3")
    page.fill("#id_p_threads", "1")
    page.click("#launch")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    job_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    job = wait_for(
        lambda: (j := Job.objects.get(pk=job_id)).status in ("succeeded", "failed") and j,
        timeout=180,
        what="the evaluate job",
    )
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    # "small" was fine-tuned by a job that logged 30 train and 3 eval losses.
    small.job = job_record(team=team, base_model=large, dataset=sms)
    small.save()
    training_history(small.job, [2.0 - i / 20 for i in range(30)], {10: 1.8, 20: 1.5, 30: 1.2})

    page.goto(f"{base}/compare/?models={small.pk},{large.pk}&dataset={sms.pk}")
    rows = page.locator("#compare-table tr.compare-row")
    assert rows.count() == 2
    assert "small" in rows.nth(0).inner_text() and "large" in rows.nth(1).inner_text()
    assert page.locator("#compare-table td.best").count() >= 2
    assert page.locator("#scatter circle.point").count() == 2
    assert page.locator("#scatter circle.pareto").count() >= 1
    page.wait_for_function("window.compareChart !== undefined")
    lines = page.evaluate(
        "window.compareChart.data.datasets.map(d => [d.label, d.data.length, d.data[0]])"
    )
    assert lines == [
        ["small v1 train", 30, {"x": 1, "y": 2.0}],
        ["small v1 eval", 3, {"x": 10, "y": 1.8}],
    ]
    assert page.evaluate(PAINTED)
    assert page.locator("#outputs-table").count() == 0  # classifiers generate nothing
    page.screenshot(path=str(live_server_proc.log.with_name("browser-compare.png")))

    evaluation = Evaluation.objects.get(job=job, model=small)
    page.click(f"#compare-table tr[data-evaluation='{evaluation.pk}'] a")
    page.wait_for_selector("#confusion")
    cells = page.locator("#confusion a.cell")
    target = next(i for i in range(cells.count()) if int(cells.nth(i).inner_text()) > 0)
    cell = cells.nth(target)
    true, pred, count = (
        cell.get_attribute("data-true"),
        cell.get_attribute("data-pred"),
        int(cell.inner_text()),
    )
    cell.click()
    page.wait_for_selector("#samples-filter")
    samples = page.locator("#samples-table tr.sample")
    assert samples.count() == min(count, 25)
    for i in range(samples.count()):
        assert samples.nth(i).get_attribute("data-true") == true
        assert samples.nth(i).get_attribute("data-pred") == pred
    assert page.locator("#confusion td.active").count() == 1
    page.click("#clear-filter")
    page.wait_for_function("!document.getElementById('samples-filter')")
    assert page.locator("#samples-table tr.sample").count() == min(evaluation.num_samples, 25)


def test_compare_page_overlays_curves_and_shows_outputs_side_by_side(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    pairs = [{"source": f"hello {i}", "target": f"bonjour {i}"} for i in range(300)]
    data = ready_dataset(team, "seq2seq", pairs, name="pairs")
    test_rows = pairs[-data.num_rows["test"] :]
    inputs, refs = [p["source"] for p in test_rows], [p["target"] for p in test_rows]
    models = []
    for n, said in enumerate(("hi", "bonjour")):
        model = RegisteredModel.objects.create(
            team=team, name=f"t5-{said}", source="upload", status="ready", task="seq2seq"
        )
        model.job = job_record(team=team, base_model=model, dataset=data)
        model.save()
        training_history(model.job, [3.0 - n - i / 10 for i in range(10)], {5: 2.5 - n})
        outputs = [ref.replace("bonjour", said) for ref in refs]
        evaluation_with_samples(
            model=model,
            dataset=data,
            measure="generation",
            metrics={"bleu": 10.0 * (n + 1)},
            rows=generations(outputs, refs=refs, inputs=inputs),
        )
        models.append(model)
    browser_login(page, base, "alice")

    page.goto(f"{base}/compare/?models={models[0].pk},{models[1].pk}&dataset={data.pk}")

    page.wait_for_function("window.compareChart !== undefined")
    assert page.evaluate("window.compareChart.data.datasets.length") == 4  # 2 models x 2 lines
    assert page.evaluate(PAINTED)
    page.select_option("#curves-x", "epoch")
    assert page.evaluate("window.compareChart.data.datasets[0].data[0]") == {"x": 0.1, "y": 3.0}
    assert page.evaluate("window.compareChart.options.scales.x.title.text") == "epoch"
    rows = page.locator("#outputs-table tr.output-row")
    assert rows.count() == 20
    first = rows.nth(0).locator("td")
    assert [first.nth(i).inner_text() for i in range(3)] == ["0", inputs[0], refs[0]]
    assert first.nth(3).inner_text().startswith(refs[0].replace("bonjour", "hi"))
    assert first.nth(4).inner_text().startswith(refs[0])
    assert "best" in (first.nth(4).get_attribute("class") or "")  # exact match
    page.click("#more-outputs")
    page.wait_for_function("document.querySelectorAll('#outputs-table tr.output-row').length > 20")
    assert rows.count() == len(inputs) == 30
    page.screenshot(path=str(live_server_proc.log.with_name("browser-compare-outputs.png")))
