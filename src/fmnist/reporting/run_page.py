"""A run folder's page of report.html (``fmnist train``): its test accuracy against the tutorial's
published numbers first, with the settings that differ from the tutorial's, then the learning curves,
the per-class results once evaluated, every epoch, and the settings and versions.
"""

from __future__ import annotations

from pathlib import Path

from fmnist.reporting.events import run_status
from fmnist.reporting.html import integer, number, section, table, text
from fmnist.reporting.page_parts import (
    evaluation_section,
    folder_figure,
    settings_section,
)
from fmnist.reporting.tables import Status
from fmnist.store import artifacts, runs

# The tutorial's own numbers (its published output): epoch 10 of the standardized MLP, and its test set.
TUTORIAL = {"settings": {"normalization": "standard", "optimizer": "sgd", "learning_rate": 0.01, "epochs": 10,
                         "batch_size": 32},
            "loss": 0.2455, "accuracy": 0.9110, "val_loss": 0.2982, "val_accuracy": 0.8920,
            "test_loss": 0.2733, "test_accuracy": 0.8825}


def run_page(folder: Path, config: dict) -> tuple[str, str, list[str]]:
    settings = config["settings"]
    history = artifacts.read_history(folder / "history.csv") if (folder / "history.csv").is_file() else []
    metrics = runs.read_metrics(folder / "metrics.json")
    title = f"Run {folder.name}"
    lead = (f"fmnist train · {text(settings['normalization'])} normalization · {text(settings['optimizer'])} at "
            f"learning rate {settings['learning_rate']:g} · batch {settings['batch_size']} · seed {settings['seed']} · "
            f"{len(history)} of {settings['epochs']} epochs")
    curves = folder_figure(folder, folder / "learning_curves.png", "loss, accuracy, val_loss and val_accuracy per epoch",
                           "The tutorial's plot: the four history series per epoch, y from 0 to 1.")
    epochs = table(history, [("epoch", "epoch", integer), ("loss", "loss"), ("accuracy", "accuracy"),
                             ("val_loss", "val_loss"), ("val_accuracy", "val_accuracy"),
                             ("epoch_seconds", "seconds", lambda value: number(value, 2))], attributes=' id="history"')
    return title, lead, [
        section("answer", "The answer", _run_answer(folder, settings, history, metrics)),
        section("curves", "Learning curves", curves),
        section("evaluation", "Per class", evaluation_section(folder, folder)),
        section("epochs", "Every epoch", epochs),
        section("settings", "Settings and versions", settings_section(settings, config)),
    ]


def _run_answer(folder: Path, settings: dict, history: list[dict], metrics: dict | None) -> str:
    status = run_status(history, settings["epochs"], metrics)
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
