"""report.html for a run, a comparison and a sweep: the answer first, real tables, embedded pictures,
nothing fetched; ``fmnist report`` writes it again from the folder's files; a headless Chromium with
the network off shows it whole at a laptop's and a phone's width. And the figures choose their axes
from the data."""

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from fmnist import CLASS_NAMES
from fmnist.cli import main
from fmnist.reporting import plots, study_plots
from fmnist.reporting.answer import versus
from fmnist.reporting.study_page import verdict
from fmnist.store import artifacts
from fmnist.store.artifacts import read_rows


class _Page(HTMLParser):
    """The parts of a page the tests look at: tables (rows of cell texts by table id), images, links."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.images, self.sources, self._table, self._row = {}, [], [], None, None
        self.feed(text)

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        self.sources += [value for key, value in attributes.items() if key in ("src", "href", "action")]
        if tag == "table":
            self._table = self.tables.setdefault(attributes.get("id") or f"table{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")
        elif tag == "img":
            self.images.append(attributes)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = self._row = None

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data


def _page(folder: Path) -> tuple[str, _Page]:
    text = (folder / "report.html").read_text()
    return text, _Page(text)


def _self_contained(text: str, page: _Page) -> None:
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert all(source.startswith("data:image/png;base64,") for source in page.sources), page.sources[:3]
    assert "default-src 'none'; img-src data:" in text  # the Content-Security-Policy lets nothing else load


def test_a_run_s_report_answers_first_against_the_tutorial(small_results):
    run = small_results.run
    text, page = _page(run)
    metrics = artifacts.read_json(run / "metrics.json")
    _self_contained(text, page)
    answer = text[text.index('id="answer"'):text.index('id="curves"')]
    assert f"Test accuracy <strong>{metrics['test_accuracy']:.4f}</strong>" in answer and "0.8825" in answer
    assert "normalization rescale (the tutorial: standard); epochs 3 (the tutorial: 10)" in answer
    assert len(page.tables["history"]) == 1 + 3  # header and one row per epoch
    per_class = next(rows for name, rows in page.tables.items() if rows and rows[0][0] == "class")
    assert [row[0] for row in per_class[1:]] == list(CLASS_NAMES)
    assert [image["alt"] for image in page.images] == ["loss, accuracy, val_loss and val_accuracy per epoch",
                                                       "confusion matrix", "the most confident mistakes"]


def test_study_reports_put_the_table_and_its_words_first(small_results):
    text, page = _page(small_results.compare)
    _self_contained(text, page)
    summary = {row["method"]: row for row in read_rows(small_results.compare / "summary.csv")}
    rows = page.tables["answer-table"]
    assert [row[0] for row in rows[1:]] == ["none", "standard"]
    none = summary["none"]
    assert rows[1][6:] == ["—", "no rate learned: try other rates"] == [versus(none), verdict(none)[1]]
    assert rows[2][6:] == ["baseline", "the baseline"]
    assert "<strong>none</strong>" in text and "no rate learned: try other rates" in text
    assert len(page.tables["members"]) == 1 + 4
    assert [image["alt"] for image in page.images] == [
        "validation accuracy per epoch, each method across seeds",
        "training and validation loss per epoch, each method across seeds"]

    text, page = _page(small_results.sweep)
    _self_contained(text, page)
    best = read_rows(small_results.sweep / "best.csv")
    assert [row[:3] for row in page.tables["answer-table"][1:]] == [
        ["sgd", row["method"], f"{row['learning_rate']:g}" if row["learning_rate"] != "" else "—"] for row in best]
    assert len(page.tables["cells"]) == 1 + 4 and len(page.tables["members"]) == 1 + 4
    assert [image["alt"] for image in page.images] == ["sgd: validation accuracy per method and rate",
                                                       "sgd: curves at each method's best rate"]


def test_verdicts_in_words():
    row = {"method": "rescale", "baseline": "standard", "learning_rate": 0.01, "test_accuracy_diff_mean": -0.0155,
           "verdict": "worse", "why": "p=0.0044"}
    assert verdict(row) == ("worse", "worse (p=0.0044)")
    assert verdict(row | {"verdict": "better"})[0] == "better"
    inconclusive = row | {"verdict": "inconclusive", "why": "only 2 paired seeds, 3 needed"}
    assert verdict(inconclusive) == ("", "inconclusive: only 2 paired seeds, 3 needed")
    assert verdict(row | {"learning_rate": "", "verdict": "no rate learned", "why": "try lower rates"}) == \
        ("", "no rate learned: try lower rates")
    assert verdict(row | {"method": "standard", "verdict": "baseline"}) == ("", "the baseline")


def test_fmnist_report_writes_the_same_page_again_and_refuses_other_folders(small_results, tmp_path, capsys):
    for folder in (small_results.run, small_results.compare, small_results.sweep):
        before = (folder / "report.html").read_bytes()
        (folder / "report.html").unlink()
        assert main(["report", str(folder)]) == 0
        assert (folder / "report.html").read_bytes() == before  # from the folder's files, nothing else
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {small_results.sweep / 'report.html'}"
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"fmnist: error: {tmp_path}: not a run, comparison or sweep folder (no config.json or study.json)\n"
    (tmp_path / "file").write_text("x")
    for target, words in ((tmp_path / "missing", "no such folder"), (tmp_path / "file", "not a folder")):
        assert main(["report", str(target)]) == 2
        assert capsys.readouterr().err == f"fmnist: error: {target}: {words}\n"


@pytest.mark.browser
def test_reports_in_a_browser_offline_at_laptop_and_phone_widths(small_results, browser):
    from PIL import Image

    browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    expected = {  # pictures, and rows of the tables with an id
        small_results.run: (3, {"versus-tutorial": 6, "history": 3}),
        small_results.compare: (2, {"answer-table": 2, "members": 4}),
        small_results.sweep: (2, {"answer-table": 2, "cells": 4, "members": 4}),
    }
    for folder, (pictures, row_counts) in expected.items():
        for width, height in ((1280, 800), (390, 844)):
            browser.set_window_size(width, height)
            browser.get((folder / "report.html").as_uri())
            decoded = browser.execute_script(
                "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            assert decoded == [True] * pictures, folder
            rows = browser.execute_script(
                "return Object.fromEntries(Array.from(document.querySelectorAll('table[id]'))"
                ".map(t => [t.id, t.tBodies[0].rows.length]))")
            assert rows == row_counts, folder
            wide = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, (folder, width, wide)  # wide tables scroll in their own box, not the page
            screenshot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L")
            assert screenshot.size[0] >= width * 0.9 and np.asarray(screenshot).std() > 10  # not blank
        errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors  # no script error, nothing the Content-Security-Policy had to block
    browser.set_network_conditions(offline=False, latency=0, download_throughput=-1, upload_throughput=-1)


def _histories():
    def run(final, epochs=4, stuck=False):
        return [{"epoch": epoch, "val_accuracy": 0.0986 if stuck else final - 0.02 / epoch,
                 "accuracy": 0.1 if stuck else final, "loss": 14.5 if stuck else 0.3 + 0.1 / epoch,
                 "val_loss": 14.5 if stuck else 0.35 + 0.1 / epoch, "epoch_seconds": 1.0} for epoch in range(1, epochs + 1)]

    return {"none": [run(0, stuck=True)] * 2, "standard": [run(0.89), run(0.885)], "rescale": [run(0.87), run(0.875)]}


def test_figures_take_their_axes_from_the_methods_that_learned(tmp_path):
    figure = study_plots.plot_across_seeds(_histories(), ("val_accuracy", "loss"), tmp_path / "curves.png")
    accuracy, loss = figure.axes
    assert 0.84 < accuracy.get_ylim()[0] < 0.86 and accuracy.get_ylim()[1] < 0.9  # not 0..1
    assert loss.get_ylim()[1] < 1 and loss.get_yscale() == "linear"
    legend = [entry.get_text() for entry in accuracy.get_legend().get_texts()]
    assert legend[0] == "none (2 seeds): final 0.0986, below this axis" and legend[1] == "standard (2 seeds)"
    assert [entry.get_text() for entry in loss.get_legend().get_texts()][0] == "none (2 seeds): final 14.5, above this axis"
    for axes in figure.axes:
        assert all(float(tick).is_integer() for tick in axes.get_xticks())  # whole epochs only
        assert axes.get_xlabel() == "epoch" and "(" in axes.get_ylabel()  # a unit
    one = study_plots.plot_across_seeds({"standard": [_histories()["standard"][0]]}, "val_accuracy", tmp_path / "one.png")
    assert one.axes[0].get_legend().get_texts()[0].get_text() == "standard (1 seed)"


def test_the_heatmap_colours_span_the_cells_that_learned(tmp_path):
    summary = [{"method": method, "optimizer": "sgd", "learning_rate": rate, "val_accuracy_mean": value,
                "diverged": 0, "members": 2}
               for method, values in {"none": (0.099, 0.1), "standard": (0.86, 0.89)}.items()
               for rate, value in zip((0.01, 0.1), values)]
    summary.append({"method": "standard", "optimizer": "sgd", "learning_rate": 0.3, "val_accuracy_mean": 0.87,
                    "diverged": 0, "members": 2})  # a rate only standard tried (a grid extension): none's is blank
    best = [{"method": "none", "learning_rate": "", "edge": ""}, {"method": "standard", "learning_rate": 0.1, "edge": ""}]
    figure = study_plots.plot_heatmap(summary, "sgd", ["none", "standard"], best, tmp_path / "heatmap.png")
    image = figure.axes[0].images[0]
    # the learned cells set the top; the scale spans at least 10 points, so a 3-point gap is not the whole range
    assert image.norm.vmax == 0.89 and image.norm.vmin == pytest.approx(0.89 - study_plots.MIN_SCALE)
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["0.3", "0.1", "0.01"]
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts[:2] == ["0.100\nstuck", "0.099\nstuck"] and re.search("boxed", figure.axes[0].get_title())
    boxes = [patch for patch in figure.axes[0].patches if patch.get_edgecolor()[0] > 0.8]  # the best rate: red
    assert [(box.get_x(), box.get_y(), box.get_linestyle()) for box in boxes] == [(0.5, 0.5, "-")]


@pytest.mark.parametrize("kind, key, value", [
    ("run", "batch_size", '<meta http-equiv="refresh" content="0;url=https://evil.example">'),
    ("run", "seed", "<b>0</b>"), ("run", "epochs", "10"), ("run", "learning_rate", "0.01"),
    ("run", "normalization", "<script>"), ("sweep", "seeds", "<meta http-equiv=refresh content=0>"),
    ("sweep", "epochs", [2]), ("compare", "batch_size", None),
])
def test_settings_edited_into_markup_or_text_are_refused_not_rendered(small_results, tmp_path, capsys, kind, key, value):
    """A config.json or study.json whose settings are not what fmnist writes (markup where a number goes,
    a number as text) is refused in one line, exit 2: the page is never written from it."""
    import json
    import shutil

    folder = tmp_path / kind
    shutil.copytree(getattr(small_results, kind), folder)
    name = "config.json" if kind == "run" else "study.json"
    recorded = json.loads((folder / name).read_text())
    recorded["settings"][key] = value
    (folder / name).write_text(json.dumps(recorded))
    before = (folder / "report.html").read_bytes()
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fmnist: error: {folder / name}: damaged settings (") and err.count("\n") == 1, err
    assert (folder / "report.html").read_bytes() == before


def test_figures_keep_every_line_on_whole_epochs(tmp_path):
    """A raw-pixel run's loss (about 15) stays inside train's curves; one epoch gets the tick 1, not 0.8 or
    1.2; the mistakes grid keeps its captions readable at the width the report shows it (under 950 px)."""
    row = {"epoch": 1, "loss": 14.5, "accuracy": 0.1, "val_loss": 14.3, "val_accuracy": 0.1, "epoch_seconds": 1.0}
    axes = plots.plot_learning_curves([row], tmp_path / "curves.png", "none").axes[0]
    assert axes.get_ylim()[0] <= 0 and axes.get_ylim()[1] >= 14.5
    assert [tick for tick in axes.get_xticks() if axes.get_xlim()[0] <= tick <= axes.get_xlim()[1]] == [1]
    tutorial = plots.plot_learning_curves([row | {"loss": 0.5, "val_loss": 0.4}], tmp_path / "tutorial.png").axes[0]
    assert tutorial.get_ylim() == (0, 1)  # the tutorial's axis when everything fits in it
    images = np.zeros((30, 28, 28), np.uint8)
    labels = np.zeros(30, np.int64)
    probabilities = np.full((30, 10), 0.05)
    probabilities[:, 1] = 0.55
    assert plots.plot_mistakes(images, labels, probabilities, tmp_path / "mistakes.png") == 24
    with open(tmp_path / "mistakes.png", "rb") as handle:
        width = int.from_bytes(handle.read(24)[16:20], "big")
    assert width <= 950
