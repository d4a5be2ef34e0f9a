"""A comparison's or a sweep's page of report.html: each method against the baseline first, in words
and as a table with intervals and p-values (the phrases of answer.py), then the figures, every member
(and for a sweep every cell), the per-class results of the members whose models were evaluated, and the
settings and versions.

The study's tables are read back as data that may have been damaged or edited: each must have its
columns, with numbers where numbers belong and only the words fmnist writes where words belong, and a
member's ``run_dir`` must name a folder inside the study; otherwise a DataError naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path

from fmnist.config import MODELS
from fmnist.errors import DataError
from fmnist.reporting import stats, tables
from fmnist.reporting.answer import verdict_text, versus
from fmnist.reporting.html import integer, number, section, table, text
from fmnist.reporting.page_parts import (
    evaluation_section,
    folder_figure,
    inside,
    settings_section,
)
from fmnist.reporting.tables import Status
from fmnist.store import artifacts
from fmnist.store.runs import brief

# -- the study's tables, checked -----------------------------------------------------------------------
# The text columns of the tables a study writes; every other column holds a number, and these a number
# or nothing (a member that is not finished, a method that learned at no rate).
TEXT_COLUMNS = ("member", "model", "method", "optimizer", "status", "program", "run_dir", "edge", "baseline", "verdict", "why",
                "per_seed")
BLANK_COLUMNS = ("diverged_epoch", "best_epoch", "learning_rate", "failed", "baseline_learning_rate")
WORDS = {"edge": ("", "lowest", "highest"), "status": tuple(status.value for status in Status),
         "model": tuple(MODELS)}  # what fmnist writes


def _table(path: Path, columns) -> list[dict]:
    """A study's table, checked; [] while it is not written yet."""
    if not path.is_file():
        return []
    rows = artifacts.read_rows(path, [column for column in columns if column != "model"], text=TEXT_COLUMNS,
                               blank=BLANK_COLUMNS)
    for row in rows:  # a table written before models were an axis: the mlp's
        row["model"] = tables.model_of(row)
    for line, row in enumerate(rows, 2):
        for column, words in WORDS.items():
            if column in columns and row[column] not in words:
                raise DataError(f"{path}: damaged table (line {line}: {column} {brief(row[column], 40)!r} is not one "
                                f"of {', '.join(map(repr, words))})")
    return rows


# -- the page ------------------------------------------------------------------------------------------
def study_page(folder: Path, study: dict) -> tuple[str, str, list[str]]:
    kind, settings = study["kind"], study["settings"]
    models = settings.get("models") or ["mlp"]
    title = f"{'Comparison' if kind == 'compare' else 'Sweep'} {folder.name}"
    lead = (f"fmnist {text(kind)} · " + (f"{len(models)} models × " if models != ["mlp"] else "")
            + f"{len(settings['methods'])} normalization methods × "
            f"{len(settings['learning_rates'])} learning rate(s) × {len(settings['optimizers'])} optimizer(s) × "
            f"{settings['seeds']} seed(s) · {settings['epochs']} epochs · batch {settings['batch_size']}")
    members = _table(folder / "members.csv", tables.MEMBER_COLUMNS)
    for row in members:
        _member_dir(folder, row["run_dir"], folder / "members.csv")
    best = _answer_rows(folder, study)
    if kind == "compare":
        figures = (folder_figure(folder, folder / "val_accuracy.png", "validation accuracy per epoch, each method across "
                                 "seeds", "Validation accuracy per epoch: mean over seeds, band from the lowest to the highest "
                                 "seed.")
                   + folder_figure(folder, folder / "loss.png", "training and validation loss per epoch, each method across "
                                   "seeds", "Training and validation loss per epoch (cross-entropy)."))
    else:
        figures = "".join(folder_figure(folder, folder / f"heatmap-{name}.png", f"{name}: validation accuracy per method and "
                                        "rate", f"{name}: mean final validation accuracy per method and learning rate.")
                          + folder_figure(folder, folder / f"curves-{name}.png", f"{name}: curves at each method's best rate",
                                          f"{name}: each method at its best learning rate, mean and range across seeds.")
                          for name in [tables.line_name(model, optimizer) for model in models for optimizer in settings["optimizers"]])
    cells = ""
    if kind == "sweep" and (folder / "summary.csv").is_file():
        summary = [row | _intervals(row) for row in _table(folder / "summary.csv", tables.SUMMARY_COLUMNS)]
        cells = "<details><summary>Every cell: model × method × optimizer × learning rate</summary>" + table(
            summary, [("model", "model"), ("method", "method"), ("optimizer", "optimizer"), ("learning_rate", "learning rate", _rate),
                      ("members", "members", integer), ("ok", "ok", integer), ("stuck", "stuck", integer),
                      ("diverged", "diverged", integer), ("val", "val_accuracy (95%)"),
                      ("test", "test_accuracy (95%)")], attributes=' id="cells"') + "</details>"
    member_table = table(members, [("member", "member"), ("status", "status"), ("epochs", "epochs", integer),
                                   ("val_accuracy", "val_accuracy"), ("best_val_accuracy", "best val_accuracy"),
                                   ("test_accuracy", "test_accuracy"), ("seconds", "seconds", lambda v: number(v, 1)),
                                   ("run_dir", "run folder")], attributes=' id="members"')
    evaluated = "".join(evaluation_section(folder, folder / row["run_dir"], f"<h3>{text(row['run_dir'])}</h3>")
                        for row in members
                        if row.get("run_dir") and (folder / row["run_dir"] / "evaluation.json").is_file())
    return title, lead, [
        section("answer", "The answer", _study_answer(folder, study, best)),
        section("curves", "Figures", figures),
        section("members", "Every member", cells, f"<details><summary>{len(members)} members</summary>{member_table}"
                "</details>"),
        section("evaluation", "Per class", evaluated or "<p>No member's model has been evaluated: <code>fmnist "
                f"evaluate {text(folder)}/RUN</code> adds per-class results for one.</p>"),
        section("settings", "Settings and versions", settings_section(settings, study)),
    ]


def _rate(value) -> str:
    return "—" if value == "" else f"{float(value):g}"


def _member_dir(folder: Path, run_dir: str, source: Path) -> None:
    """A table's ``run_dir``: empty, or the plain name of a folder inside the study (``source`` names it)."""
    if run_dir and (run_dir in (".", "..") or "/" in run_dir or "\\" in run_dir or "\0" in run_dir):
        raise DataError(f"{source}: run_dir {brief(run_dir, 80)!r} is not the name of a member's folder in {folder}; "
                        "refusing to embed from it")
    if run_dir:
        inside(folder, folder / run_dir, source)


def _answer_rows(folder: Path, study: dict) -> list[dict]:
    """best.csv (a sweep) or summary.csv (a comparison: the same columns); [] before the study ends."""
    path = folder / ("best.csv" if study["kind"] == "sweep" else "summary.csv")
    rows = _table(path, tables.BEST_COLUMNS)
    for row in rows:
        _member_dir(folder, row["run_dir"], path)
    return rows


def _intervals(row: dict) -> dict:
    return {"val": stats.format_mean(row["val_accuracy_mean"], row["val_accuracy_low"], row["val_accuracy_high"]),
            "test": stats.format_mean(row["test_accuracy_mean"], row["test_accuracy_low"], row["test_accuracy_high"])}


def verdict(row: dict) -> tuple[str, str]:
    """(css class, words) for one method against the baseline, as tables.best_rows judged it."""
    if row["verdict"] == "baseline":
        return "", "the baseline"
    css = row["verdict"] if row["verdict"] in ("better", "worse") else ""
    return css, verdict_text(row)


def _study_answer(folder: Path, study: dict, best: list[dict]) -> str:
    kind = study["kind"]
    if not best:
        return (f'<div class="answer bad"><p><strong>Not finished</strong>: continue with <code>fmnist {kind} '
                f"--resume {text(folder)}</code>; the members trained so far are listed below.</p></div>")
    sentences, several = [], tables.several_models(best)
    for row in best:
        css, words = verdict(row)
        edge = f", the {text(row['edge'])} tried" if row["edge"] else ""
        network = f"{text(row['model'])}, " if several else ""
        where = f" ({network}{text(row['optimizer'])}, best rate {_rate(row['learning_rate'])}{edge})" if kind == "sweep" else ""
        measured = row["failed"] not in ("", None) and math.isfinite(float(row["test_accuracy_mean"]))
        failed = (f"; {integer(row['failed'])} of {integer(row['members'])} runs stuck at chance or diverged"
                  if measured and float(row["failed"]) else "")
        accuracy = f", test accuracy {_intervals(row)['test']}" if measured else ""
        split = f" <small>Seeds split: {text(row['per_seed'])}.</small>" if row.get("per_seed") else ""
        sentences.append(f'<li><strong>{text(row["method"])}</strong>{where}: <span class="{css}">{text(words)}</span>'
                         f"{accuracy}{failed}{split}</li>")
    baseline = best[0]["baseline"]
    intro = (f"<p>Test accuracy of each method against <strong>{text(baseline)}</strong>"
             + (" at its own best learning rate (chosen on validation accuracy)" if kind == "sweep" else "")
             + ", mean over seeds with its 95% interval; the difference is paired by seed (same initialization and "
             f"shuffle order) and tested with a paired t-test (significant below p = {stats.SIGNIFICANT}). With fewer "
             f"than {stats.MIN_PAIRS} paired seeds, or seeds that could not have detected a difference of "
             f"{100 * stats.MEANINGFUL:g} point, the verdict is inconclusive; a best rate on the edge of the rates "
             "tried gets none.</p>")
    columns = ([("model", "model")] if several else []) + ([("optimizer", "optimizer")] if kind == "sweep" else []) + [
        ("method", "method"), ("learning_rate", "best rate" if kind == "sweep" else "learning rate", _rate),
        ("members", "runs", integer), ("failed", "failed", integer),
        ("val", "val_accuracy (95%)"), ("test", "test_accuracy (95%)"),
        ("versus", f"vs {baseline}"), ("verdict_html", "verdict", lambda value: value)]
    shown = [row | _intervals(row) | {"versus": versus(row),
                                      "verdict_html": f'<span class="words {verdict(row)[0]}">{text(verdict(row)[1])}</span>'}
             for row in best]
    return (f'<div class="answer">{intro}<ul>{"".join(sentences)}</ul></div>'
            + table(shown, columns, caption="95%: Student-t interval across seeds on the logit scale (inside 0..1); "
                    "failed: runs stuck at chance or diverged.", attributes=' id="answer-table"'))
