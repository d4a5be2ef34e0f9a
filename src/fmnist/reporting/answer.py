"""The study's answer in words, from the rows of best.csv (tables.best_rows): the table the sweep and
compare commands print with its legend, each method's difference from the baseline and its verdict as a
phrase, and the lines that answer the question per model and optimizer (and the models side by side).

The same phrases label report.html's answer table (study_page.py), so the terminal and the page say one
thing in the same words.
"""

from __future__ import annotations

import math

from fmnist.reporting import stats
from fmnist.reporting.tables import model_of, several_models


def format_best(best: list[dict], rate_label: str = "best rate") -> str:
    shown = several_models(best)
    header = (("model  " if shown else "") + f"{'optimizer':<9} {'method':<10} {rate_label:>9}  {'val_accuracy (95%)':<25} "
              f"{'test_accuracy (95%)':<25} {'vs baseline':<10} verdict (paired by seed)")
    lines = [header, "-" * len(header)]
    for row in best:
        rate = "—" if row["learning_rate"] == "" else f"{float(row['learning_rate']):g}" + ("*" if row["edge"] else "")
        lines.append((f"{model_of(row):<6} " if shown else "") + f"{row['optimizer']:<9} {row['method']:<10} {rate:>9}  "
                     f"{stats.format_mean(row['val_accuracy_mean'], row['val_accuracy_low'], row['val_accuracy_high']):<25} "
                     f"{stats.format_mean(row['test_accuracy_mean'], row['test_accuracy_low'], row['test_accuracy_high']):<25} "
                     f"{versus(row):<10} {verdict_text(row)}")
    return "\n".join(lines)


LEGEND = (f"95%: Student-t interval across seeds on the logit scale (inside 0..1); vs baseline: mean paired difference "
          f"in test accuracy, in points, paired by seed; verdict: paired t-test, significant below p={stats.SIGNIFICANT}, "
          f"inconclusive with fewer than {stats.MIN_PAIRS} paired seeds or seeds that could not have detected "
          f"{100 * stats.MEANINGFUL:g} point; *: the best rate is the lowest or highest tried (not judged)")


def versus(row: dict) -> str:
    """The paired difference in points, or what stands in for it."""
    if row["verdict"] == "baseline":
        return "baseline"
    diff = row["test_accuracy_diff_mean"]
    return "—" if row["learning_rate"] == "" or math.isnan(float(diff)) else f"{100 * float(diff):+.2f} pt"


def verdict_text(row: dict) -> str:
    """"worse (p=0.0012)", "inconclusive: only 2 paired seeds (3 needed)", "no rate learned: try lower rates"."""
    if row["verdict"] == "baseline":
        return ""
    if row["verdict"] in ("better", "worse"):
        return f"{row['verdict']} ({row['why']})"
    return f"{row['verdict']}: {row['why']}"


def answer(best: list[dict]) -> list[str]:
    """The study's answer in words: one line per optimizer (per model and optimizer when the study has
    several networks), one per method whose seeds split, and the models side by side."""
    lines = []
    shown = several_models(best)
    for model, optimizer in dict.fromkeys((model_of(row), row["optimizer"]) for row in best):
        block = [row for row in best if (model_of(row), row["optimizer"]) == (model, optimizer)]
        label = f"{model} {optimizer}" if shown else optimizer
        base = next(row for row in block if row["method"] == row["baseline"])
        if base["learning_rate"] == "":
            lines.append(f"{label}: the baseline {base['method']} learned at no rate ({base['why']}); nothing to "
                         "compare against")
            continue
        parts = []
        for row in block:
            if row is base:
                continue
            if row["learning_rate"] == "":
                parts.append(f"{row['method']} {verdict_text(row)}")
                continue
            where = f"at lr {float(row['learning_rate']):g}"
            parts.append(f"{row['method']} {row['verdict']} ({100 * float(row['test_accuracy_diff_mean']):+.2f} points "
                         f"{where}; {row['why']})")
        edge = "*" if base["edge"] else ""
        lines.append(f"{label}, each method at its own best learning rate (chosen on validation), test accuracy "
                     f"against {base['method']} ({float(base['test_accuracy_mean']):.4f} at lr "
                     f"{float(base['learning_rate']):g}{edge}): " + ("; ".join(parts) if parts else "the only method trained"))
        lines += [f"{label}, {row['method']}: the seeds split at lr {float(row['learning_rate']):g}: {row['per_seed']}"
                  for row in block if row["per_seed"]]
    return lines + (models_side_by_side(best) if shown else [])


def models_side_by_side(best: list[dict]) -> list[str]:
    """Per optimizer and method, each model's test accuracy at its own best rate: the models compared."""
    lines = []
    for optimizer in dict.fromkeys(row["optimizer"] for row in best):
        for method in dict.fromkeys(row["method"] for row in best):
            cells = [row for row in best if (row["optimizer"], row["method"]) == (optimizer, method)]
            parts = [f"{model_of(row)} " + ("learned at no rate" if row["learning_rate"] == "" else
                                             f"{float(row['test_accuracy_mean']):.4f} at lr {float(row['learning_rate']):g}"
                                             + ("*" if row["edge"] else ""))
                     for row in cells]
            lines.append(f"{optimizer}, {method}, each model at its own best rate, test accuracy: " + "; ".join(parts))
    return lines
