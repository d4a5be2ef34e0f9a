"""``predict``: users' images through a saved model, as a table, JSON or CSV; what the model saw, as
PNG files (``save_inputs``) and a contact sheet (``draw_sheet``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from fmnist.data import CLASS_NAMES
from fmnist.guard.model_checks import probability_rows
from fmnist.guard.safe_files import write_error
from fmnist.guard.text import printable
from fmnist.inputs.read import Item
from fmnist.reporting import plots
from fmnist.store import artifacts

FIELDS = ("input", "index", "label", "class_name", "probability", "top3", "error", "warning")
SHEET_LIMIT = 100  # rows on one contact sheet: beyond that a sheet is too tall to look at
SHEET_COLUMNS = 2  # pictures side by side on the sheet


def predict(model, items: list[Item]) -> list[dict]:
    """One result per item, in order; items that failed to read keep their error."""
    good = [item for item in items if item.error is None]
    rows = []
    if good:
        batch = np.stack([item.image for item in good])
        rows = np.asarray(model.predict(batch, batch_size=min(len(batch), 1024), verbose=0))
    return results(items, rows)


def results(items: list[Item], probabilities) -> list[dict]:
    """The objects ``--format json`` prints (and ``fmnist serve`` answers): one per item, in order.

    ``probabilities`` holds one row per item without an error, in the same order."""
    rows = iter(probabilities)
    answers = []
    for item in items:
        result = {"input": item.input, "index": item.index, "label": None, "class_name": None,
                  "probability": None, "top3": None, "error": item.error, "warning": item.warning}
        row = next(rows) if item.error is None else None
        if row is not None and not probability_rows(np.asarray(row)[None])[0]:
            result["error"] = f"the model's output is not a probability vector ({_short(row)})"
        elif row is not None:
            top = np.argsort(row)[::-1][:3]
            result.update(
                label=int(top[0]), class_name=CLASS_NAMES[top[0]], probability=float(row[top[0]]),
                top3=[{"label": int(k), "class_name": CLASS_NAMES[k], "probability": float(row[k])} for k in top],
            )
        answers.append(result)
    return answers


def _short(row) -> str:
    return ", ".join(f"{value:.3g}" for value in np.asarray(row, dtype=np.float64)[:3]) + ", …"


def _top3_text(result: dict) -> str:
    return ", ".join(f"{entry['class_name']} {entry['probability']:.2f}" for entry in result["top3"])


def render(results: list[dict], form: str) -> str:
    if form == "json":
        return json.dumps(results, indent=2)
    if form == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for result in results:
            writer.writerow({key: printable(value) if isinstance(value, str) else value for key, value in result.items()}
                            | {"top3": _top3_text(result) if result["top3"] else ""})
        return buffer.getvalue().rstrip("\n")
    multi = _multi(results)
    names = [printable(r["input"]) + (f"[{r['index']}]" if r["index"] or r["input"] in multi else "") for r in results]
    width = max([len("input")] + [len(name) for name in names])
    lines = [f"{'input':<{width}}  {'class':<11}  {'prob':>5}  top 3"]
    for name, result in zip(names, results):
        if result["error"]:
            lines.append(f"{name:<{width}}  error: {printable(result['error'])}")
        else:
            line = f"{name:<{width}}  {result['class_name']:<11}  {result['probability']:>5.3f}  {_top3_text(result)}"
            lines.append(line + (f"  (warning: {printable(result['warning'])})" if result["warning"] else ""))
    return "\n".join(lines)


def _multi(results: list[dict]) -> set[str]:
    """The multi-image files (.npy or IDX), whose rows need their index (one pass: 85,000 rows are allowed)."""
    indices: dict[str, set] = {}
    for result in results:
        indices.setdefault(result["input"], set()).add(result["index"])
    return {name for name, seen in indices.items() if len(seen) > 1}


def _row_names(items: list[Item]) -> list[str]:
    """A file name per row: the row number, the input's stem, and the index within a multi-image file."""
    counts = {}
    for item in items:
        counts[item.input] = counts.get(item.input, 0) + 1
    width = max(4, len(str(len(items))))
    return [f"{number:0{width}d}-{Path(item.input).stem}" + (f"-{item.index}" if counts[item.input] > 1 else "")
            for number, item in enumerate(items, 1)]


def save_inputs(items: list[Item], folder: Path) -> int:
    """Write each converted 28x28 image as PNG into ``folder`` (created if missing); returns how many."""
    from PIL import Image

    _writing(folder, lambda: folder.mkdir(parents=True, exist_ok=True))
    written = 0
    for name, item in zip(_row_names(items), items):
        if item.image is not None:
            image, path = Image.fromarray(item.image), folder / f"{name}.png"
            _writing(path, lambda: artifacts.write_with(path, lambda temporary: image.save(temporary, format="PNG")))
            written += 1
    return written


def _writing(path: Path, write) -> None:
    """Run ``write``; a file that cannot be written is said in one line (a full disk exits 1, else 2)."""
    try:
        write()
    except OSError as error:
        raise write_error(path, error) from None


def draw_sheet(items: list[Item], results: list[dict], path: Path, limit: int = SHEET_LIMIT) -> int:
    """The contact sheet (plots.plot_sheet); returns the rows drawn."""
    _writing(path, lambda: plots.plot_sheet(items, results, path, limit, SHEET_COLUMNS))
    return min(len(items), limit)
