"""What a run's page and a study's page of report.html share: pictures and files checked to lie inside
the folder reported on (and small enough to embed), the per-class results of an evaluated run folder (a
study shows them for each member whose model was evaluated), and the settings and versions.

Everything embedded must lie inside the folder reported on once links are followed: a member's
``run_dir`` of ``../elsewhere`` or a figure linked out of the folder is a DataError naming the file that
named it, and report.html stays as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from fmnist.errors import DataError
from fmnist.guard import limits
from fmnist.reporting.events import evaluation_images
from fmnist.reporting.html import figure, integer, number, pairs, table, text
from fmnist.store import runs


def inside(root: Path, path: Path, source: Path) -> Path:
    """``path`` when it lies inside ``root`` once links are followed; DataError naming ``source`` (the
    file that named it) otherwise: the page embeds nothing from outside the folder it reports on."""
    resolved, top = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if resolved != top and top not in resolved.parents:
        raise DataError(f"{source}: {path} leads outside {root} (to {resolved}); refusing to embed it")
    return path


def folder_figure(root: Path, path: Path, alt: str, caption: str = "") -> str:
    """A figure of the folder (not too large to embed), or a line saying it is missing."""
    inside(root, path, path)
    if path.is_file() and path.stat().st_size > limits.MAX_FILE_BYTES:
        raise DataError(f"{path}: {path.stat().st_size:,} bytes; over the limit of {limits.MAX_FILE_BYTES:,} for a "
                        "picture to embed")
    return figure(path, alt, caption)


def evaluation_section(root: Path, folder: Path, heading: str = "") -> str:
    """Per-class scores, confusion matrix and mistakes, or how to get them (``root``: the folder reported on,
    which holds ``folder``)."""
    if not (folder / "evaluation.json").is_file():
        return f"<p>Not evaluated yet: <code>fmnist evaluate {text(folder)}</code> adds per-class precision, recall " \
               "and F1, the confusion matrix and the most confident mistakes, here and in TensorBoard.</p>"
    result = runs.read_evaluation(inside(root, folder / "evaluation.json", folder / "evaluation.json"))
    note = "" if evaluation_images(folder) or not (folder / "model.keras").is_file() else (
        "<p><strong>Older than the model</strong>: this evaluation was made before the run trained on; run "
        f"<code>fmnist evaluate {text(folder)}</code> again.</p>")
    scores = table(result["per_class"], [("class", "class"), ("precision", "precision", lambda v: number(v, 3)),
                                         ("recall", "recall", lambda v: number(v, 3)), ("f1", "F1", lambda v: number(v, 3)),
                                         ("support", "test images", integer)],
                   caption=f"Test loss {result['test_loss']:.4f}, accuracy {result['test_accuracy']:.4f}.",
                   attributes=' class="per-class"')
    return (heading + note + scores
            + folder_figure(root, folder / "confusion_matrix.png", "confusion matrix",
                            "Rows: the true class; each row sums to 1.")
            + ("<p>No test image was misclassified.</p>" if result.get("mistakes_shown") == 0 else
               folder_figure(root, folder / "mistakes.png", "the most confident mistakes",
                             f"The most confident of the {sum(row['support'] for row in result['per_class']):,} test images "
                             "the model got wrong: true class, predicted class and its probability.")))


def settings_section(settings: dict, recorded: dict) -> str:
    shown = [(key, value) for key, value in settings.items() if key != "data_dir"]
    data = recorded.get("data", {})
    shown += [("data", data.get("source", "")), ("data verified by SHA-256", data.get("verified", ""))]
    versions = [(key, value) for key, value in recorded.get("environment", {}).items() if value != ""]
    return "<h3>Settings</h3>" + pairs(shown) + "<h3>Versions and machine</h3>" + pairs(versions)
