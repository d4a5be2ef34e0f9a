"""``predict``: users' images through a saved model, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from fmnist import CLASS_NAMES
from fmnist.images import Item

FORMATS = ("table", "json", "csv")
FIELDS = ("input", "index", "label", "class_name", "probability", "top3", "error")


def predict(model, items: list[Item]) -> list[dict]:
    """One result per item, in order; items that failed to read keep their error."""
    good = [item for item in items if item.error is None]
    probabilities = {}
    if good:
        batch = np.stack([item.image for item in good])
        for item, row in zip(good, np.asarray(model.predict(batch, batch_size=min(len(batch), 1024), verbose=0))):
            probabilities[id(item)] = row
    results = []
    for item in items:
        result = {"input": item.input, "index": item.index, "label": None, "class_name": None,
                  "probability": None, "top3": None, "error": item.error}
        row = probabilities.get(id(item))
        if row is not None:
            top = np.argsort(row)[::-1][:3]
            result.update(
                label=int(top[0]), class_name=CLASS_NAMES[top[0]], probability=float(row[top[0]]),
                top3=[{"label": int(k), "class_name": CLASS_NAMES[k], "probability": float(row[k])} for k in top],
            )
        results.append(result)
    return results


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
            writer.writerow(result | {"top3": _top3_text(result) if result["top3"] else ""})
        return buffer.getvalue().rstrip("\n")
    names = [r["input"] + (f"[{r['index']}]" if r["index"] or _multi(results, r["input"]) else "") for r in results]
    width = max([len("input")] + [len(name) for name in names])
    lines = [f"{'input':<{width}}  {'class':<11}  {'prob':>5}  top 3"]
    for name, result in zip(names, results):
        if result["error"]:
            lines.append(f"{name:<{width}}  error: {result['error']}")
        else:
            lines.append(f"{name:<{width}}  {result['class_name']:<11}  {result['probability']:>5.3f}  {_top3_text(result)}")
    return "\n".join(lines)


def _multi(results: list[dict], name: str) -> bool:
    """Whether ``name`` is a multi-image file (.npy or IDX), whose rows need their index."""
    return len({r["index"] for r in results if r["input"] == name}) > 1
