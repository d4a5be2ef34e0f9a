"""``report.html``: a run, comparison or sweep folder as one page to read or send.

Written from the folder's files only (history is data: config.json / study.json, the CSV tables,
metrics.json, evaluation.json and the PNG figures), so ``fmnist report FOLDER`` writes the same page
again at any time. The answer comes first: for a run, its test accuracy against the tutorial's; for a
study, each method against the baseline, in words and as a table with intervals and p-values. Then
the figures, per-class results where ``fmnist evaluate`` has run, every epoch or member, and the
settings and library versions. One self-contained file (htmlpage.py): no script, nothing fetched.

The folder's files are read as data that may have been damaged or edited: each table must have its
columns with numbers where numbers belong, metrics.json and evaluation.json their fields of their types,
and every picture embedded must lie inside the folder reported on (a member's ``run_dir`` of
``../elsewhere`` or a figure linked out of the folder is refused): a DataError naming the file, and
report.html stays as it was.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from fmnist.config import MODELS
from fmnist.errors import DataError, UsageError
from fmnist.guard import limits
from fmnist.reporting import events, stats, tables
from fmnist.reporting.html import (
    figure,
    integer,
    number,
    page,
    pairs,
    section,
    table,
    text,
)
from fmnist.reporting.tables import Status
from fmnist.runtime import VERSION
from fmnist.store import artifacts, runs, studies
from fmnist.store.runs import brief

REPORT = "report.html"
# The tutorial's own numbers (its published output): epoch 10 of the standardized MLP, and its test set.
TUTORIAL = {"settings": {"normalization": "standard", "optimizer": "sgd", "learning_rate": 0.01, "epochs": 10,
                         "batch_size": 32},
            "loss": 0.2455, "accuracy": 0.9110, "val_loss": 0.2982, "val_accuracy": 0.8920,
            "test_loss": 0.2733, "test_accuracy": 0.8825}


def refresh_reports(run_folder) -> list[Path]:
    """After ``fmnist evaluate`` of a run folder: its report, and the report of the study it belongs to
    (when that has one), rewritten to show the evaluation. Returns the pages written."""
    folder = Path(run_folder)
    if not (folder / "config.json").is_file():
        return []  # a model file outside a run folder: no report to update
    written = [write_report(folder)]
    study = folder.resolve().parent  # a study keeps its members' run folders inside it
    if "study_member" in artifacts.read_json(folder / "config.json") and (study / "report.html").is_file():
        written.append(write_report(study))
    return written


def write_report(folder) -> Path:
    """Write ``folder``/report.html; UsageError when the folder is neither a run nor a study."""
    folder = Path(folder)
    if (folder / studies.STUDY_FILE).is_file():  # both readers check the settings: valid values, no markup
        title, lead, sections = _study(folder, studies.read_study(folder))
    elif (folder / "config.json").is_file():
        title, lead, sections = _run(folder, runs.read_config(folder))
    elif not folder.is_dir():
        raise UsageError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    else:
        raise UsageError(f"{folder}: not a run, comparison or sweep folder (no config.json or {studies.STUDY_FILE})")
    footer = (f"Written by fmnist {text(VERSION)} from the files in <code>{text(folder)}</code>; "
              f"<code>fmnist report {text(folder)}</code> writes it again. Training curves of every run and member: "
              f"<code>tensorboard --logdir {text(folder)}</code>.")
    path = folder / REPORT
    artifacts.write_bytes(path, page(title, lead, sections, footer).encode())
    return path


# -- what the page reads: tables, metrics and pictures, checked ----------------------------------------
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


def _inside(root: Path, path: Path, source: Path) -> Path:
    """``path`` when it lies inside ``root`` once links are followed; DataError naming ``source`` (the
    file that named it) otherwise: the page embeds nothing from outside the folder it reports on."""
    resolved, top = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if resolved != top and top not in resolved.parents:
        raise DataError(f"{source}: {path} leads outside {root} (to {resolved}); refusing to embed it")
    return path


def _figure(root: Path, path: Path, alt: str, caption: str = "") -> str:
    """A figure of the folder (not too large to embed), or a line saying it is missing."""
    _inside(root, path, path)
    if path.is_file() and path.stat().st_size > limits.MAX_FILE_BYTES:
        raise DataError(f"{path}: {path.stat().st_size:,} bytes; over the limit of {limits.MAX_FILE_BYTES:,} for a "
                        "picture to embed")
    return figure(path, alt, caption)


# -- a run -------------------------------------------------------------------------------------------
def _run(folder: Path, config: dict) -> tuple[str, str, list[str]]:
    settings = config["settings"]
    history = artifacts.read_history(folder / "history.csv") if (folder / "history.csv").is_file() else []
    metrics = runs.read_metrics(folder / "metrics.json")
    title = f"Run {folder.name}"
    lead = (f"fmnist train · {text(settings['normalization'])} normalization · {text(settings['optimizer'])} at "
            f"learning rate {settings['learning_rate']:g} · batch {settings['batch_size']} · seed {settings['seed']} · "
            f"{len(history)} of {settings['epochs']} epochs")
    curves = _figure(folder, folder / "learning_curves.png", "loss, accuracy, val_loss and val_accuracy per epoch",
                     "The tutorial's plot: the four history series per epoch, y from 0 to 1.")
    epochs = table(history, [("epoch", "epoch", integer), ("loss", "loss"), ("accuracy", "accuracy"),
                             ("val_loss", "val_loss"), ("val_accuracy", "val_accuracy"),
                             ("epoch_seconds", "seconds", lambda value: number(value, 2))], attributes=' id="history"')
    return title, lead, [
        section("answer", "The answer", _run_answer(folder, settings, history, metrics)),
        section("curves", "Learning curves", curves),
        section("evaluation", "Per class", _evaluation(folder, folder)),
        section("epochs", "Every epoch", epochs),
        section("settings", "Settings and versions", _settings(settings, config)),
    ]


def _run_answer(folder: Path, settings: dict, history: list[dict], metrics: dict | None) -> str:
    status = events.run_status(history, settings["epochs"], metrics)
    last = history[-1] if history else {}
    if status == Status.DIVERGED:
        return (f'<div class="answer bad"><p>Training <strong>diverged</strong> at epoch {last["epoch"]}: the loss became '
                "non-finite, so no model was saved. A lower learning rate or a normalization usually helps.</p></div>")
    if status in (Status.TRAINING, Status.PENDING):
        return (f'<div class="answer bad"><p><strong>Not finished</strong>: {len(history)} of {settings["epochs"]} '
                f"epochs trained. Continue with <code>fmnist train --resume {text(folder)}</code>.</p></div>")
    accuracy = metrics["test_accuracy"]
    difference = (accuracy - TUTORIAL["test_accuracy"]) * 100
    words = (f"<p>Test accuracy <strong>{accuracy:.4f}</strong> on {metrics['split_sizes']['test']:,} test images, "
             f"against the tutorial's <strong>0.8825</strong>: {abs(difference):.2f} points "
             f"{'higher' if difference >= 0 else 'lower'}.</p>")
    if status == Status.STUCK:
        words += "<p>The model is <strong>stuck at chance</strong> (ten classes: 0.10): it did not learn.</p>"
    differs = [f"{key.replace('_', ' ')} {settings[key]} (the tutorial: {value})"
               for key, value in TUTORIAL["settings"].items() if settings[key] != value]
    if differs:
        words += "<p>Settings that differ from the tutorial's: " + text("; ".join(differs)) + ".</p>"
    rows = [{"what": f"epoch {last['epoch']} {key}" if key in last else key, "run": last.get(key, metrics.get(key)),
             "tutorial": value} for key, value in TUTORIAL.items() if key != "settings"]
    numbers = table(rows, [("what", "quantity"), ("run", "this run"), ("tutorial", "the tutorial (epoch 10)")],
                    attributes=' id="versus-tutorial"')
    return f'<div class="answer{" bad" if status != Status.OK else ""}">{words}</div>{numbers}'


def _evaluation(root: Path, folder: Path, heading: str = "") -> str:
    """Per-class scores, confusion matrix and mistakes, or how to get them (``root``: the folder reported on,
    which holds ``folder``)."""
    if not (folder / "evaluation.json").is_file():
        return f"<p>Not evaluated yet: <code>fmnist evaluate {text(folder)}</code> adds per-class precision, recall " \
               "and F1, the confusion matrix and the most confident mistakes, here and in TensorBoard.</p>"
    result = runs.read_evaluation(_inside(root, folder / "evaluation.json", folder / "evaluation.json"))
    note = "" if events.evaluation_images(folder) or not (folder / "model.keras").is_file() else (
        "<p><strong>Older than the model</strong>: this evaluation was made before the run trained on; run "
        f"<code>fmnist evaluate {text(folder)}</code> again.</p>")
    scores = table(result["per_class"], [("class", "class"), ("precision", "precision", lambda v: number(v, 3)),
                                         ("recall", "recall", lambda v: number(v, 3)), ("f1", "F1", lambda v: number(v, 3)),
                                         ("support", "test images", integer)],
                   caption=f"Test loss {result['test_loss']:.4f}, accuracy {result['test_accuracy']:.4f}.",
                   attributes=' class="per-class"')
    return (heading + note + scores
            + _figure(root, folder / "confusion_matrix.png", "confusion matrix",
                      "Rows: the true class; each row sums to 1.")
            + ("<p>No test image was misclassified.</p>" if result.get("mistakes_shown") == 0 else
               _figure(root, folder / "mistakes.png", "the most confident mistakes",
                     f"The most confident of the {sum(row['support'] for row in result['per_class']):,} test images "
                     "the model got wrong: true class, predicted class and its probability.")))


def _settings(settings: dict, recorded: dict) -> str:
    shown = [(key, value) for key, value in settings.items() if key != "data_dir"]
    data = recorded.get("data", {})
    shown += [("data", data.get("source", "")), ("data verified by SHA-256", data.get("verified", ""))]
    versions = [(key, value) for key, value in recorded.get("environment", {}).items() if value != ""]
    return "<h3>Settings</h3>" + pairs(shown) + "<h3>Versions and machine</h3>" + pairs(versions)


# -- a study -----------------------------------------------------------------------------------------
def _study(folder: Path, study: dict) -> tuple[str, str, list[str]]:
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
        figures = (_figure(folder, folder / "val_accuracy.png", "validation accuracy per epoch, each method across "
                           "seeds", "Validation accuracy per epoch: mean over seeds, band from the lowest to the highest "
                           "seed.")
                   + _figure(folder, folder / "loss.png", "training and validation loss per epoch, each method across "
                             "seeds", "Training and validation loss per epoch (cross-entropy)."))
    else:
        figures = "".join(_figure(folder, folder / f"heatmap-{name}.png", f"{name}: validation accuracy per method and "
                                  "rate", f"{name}: mean final validation accuracy per method and learning rate.")
                          + _figure(folder, folder / f"curves-{name}.png", f"{name}: curves at each method's best rate",
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
    evaluated = "".join(_evaluation(folder, folder / row["run_dir"], f"<h3>{text(row['run_dir'])}</h3>")
                        for row in members
                        if row.get("run_dir") and (folder / row["run_dir"] / "evaluation.json").is_file())
    return title, lead, [
        section("answer", "The answer", _study_answer(folder, study, best)),
        section("curves", "Figures", figures),
        section("members", "Every member", cells, f"<details><summary>{len(members)} members</summary>{member_table}"
                "</details>"),
        section("evaluation", "Per class", evaluated or "<p>No member's model has been evaluated: <code>fmnist "
                f"evaluate {text(folder)}/RUN</code> adds per-class results for one.</p>"),
        section("settings", "Settings and versions", _settings(settings, study)),
    ]


def _rate(value) -> str:
    return "—" if value == "" else f"{float(value):g}"


def _member_dir(folder: Path, run_dir: str, source: Path) -> None:
    """A table's ``run_dir``: empty, or the plain name of a folder inside the study (``source`` names it)."""
    if run_dir and (run_dir in (".", "..") or "/" in run_dir or "\\" in run_dir or "\0" in run_dir):
        raise DataError(f"{source}: run_dir {brief(run_dir, 80)!r} is not the name of a member's folder in {folder}; "
                        "refusing to embed from it")
    if run_dir:
        _inside(folder, folder / run_dir, source)


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
    return css, tables.verdict_text(row)


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
    shown = [row | _intervals(row) | {"versus": tables.versus(row),
                                      "verdict_html": f'<span class="words {verdict(row)[0]}">{text(verdict(row)[1])}</span>'}
             for row in best]
    return (f'<div class="answer">{intro}<ul>{"".join(sentences)}</ul></div>'
            + table(shown, columns, caption="95%: Student-t interval across seeds on the logit scale (inside 0..1); "
                    "failed: runs stuck at chance or diverged.", attributes=' id="answer-table"'))


