"""The tables of a study, built from plain rows: members, their histories, per-cell summaries, and each
method at its best learning rate (chosen on validation, reported on test, tested against the baseline).
"""

from __future__ import annotations

import math

from fmnist import artifacts, stats

CHANCE = 0.1  # ten balanced classes
STUCK_BELOW = 1.5 * CHANCE  # a final validation accuracy this low means the member did not learn
SIGNIFICANT = 0.05

MEMBER_COLUMNS = ("member", "method", "optimizer", "learning_rate", "seed", "status", "diverged_epoch", "epochs",
                  "val_accuracy", "val_loss", "best_val_accuracy", "best_epoch", "test_accuracy", "test_loss",
                  "seconds", "program", "run_dir")
KEY_COLUMNS = ("member", "method", "optimizer", "learning_rate", "seed")
HISTORY_COLUMNS = KEY_COLUMNS + artifacts.HISTORY_COLUMNS
SUMMARY_COLUMNS = ("method", "optimizer", "learning_rate", "members", "ok", "stuck", "diverged",
                   "val_accuracy_mean", "val_accuracy_std", "val_accuracy_ci95",
                   "test_accuracy_mean", "test_accuracy_std", "test_accuracy_ci95")
BEST_COLUMNS = ("optimizer", "method", "learning_rate", "members", "failed", "val_accuracy_mean", "val_accuracy_ci95",
                "test_accuracy_mean", "test_accuracy_std", "test_accuracy_ci95", "baseline", "baseline_learning_rate",
                "pairs", "test_accuracy_diff_mean", "p_value")


def status_of(history: list[dict], epochs: int, tested: bool) -> tuple[str, int | str]:
    """ok / stuck at chance / diverged (with the epoch) / training / pending."""
    if not history:
        return "pending", ""
    last = history[-1]
    if not all(math.isfinite(last[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")):
        return "diverged", last["epoch"]
    if len(history) < epochs or not tested:
        return "training", ""
    return ("stuck at chance" if last["val_accuracy"] < STUCK_BELOW else "ok"), ""


def member_rows(members, histories, tests: dict, epochs: int, program_sizes: dict, run_dirs: dict) -> list[dict]:
    """One row per member, in member order. ``tests``: member index -> test metrics of finished programs;
    ``program_sizes``: member index -> (program name, members in it); ``run_dirs``: index -> folder name."""
    rows = []
    for member, history in zip(members, histories):
        status, diverged_epoch = status_of(history, epochs, member.index in tests)
        finite = [row for row in history if math.isfinite(row["val_accuracy"])]
        best = max(finite, key=lambda row: row["val_accuracy"]) if finite else None
        last = history[-1] if history else {}
        test = tests.get(member.index, {}) if status in ("ok", "stuck at chance") else {}
        program, size = program_sizes[member.index]
        rows.append({
            "member": member.name, "method": member.method, "optimizer": member.optimizer,
            "learning_rate": member.learning_rate, "seed": member.seed, "status": status,
            "diverged_epoch": diverged_epoch, "epochs": len(history),
            "val_accuracy": last.get("val_accuracy", math.nan), "val_loss": last.get("val_loss", math.nan),
            "best_val_accuracy": best["val_accuracy"] if best else math.nan, "best_epoch": best["epoch"] if best else "",
            "test_accuracy": test.get("test_accuracy", math.nan), "test_loss": test.get("test_loss", math.nan),
            # the member's share of its program's time: the members of a program train together
            "seconds": round(sum(row["epoch_seconds"] for row in history) / size, 3),
            "program": program, "run_dir": run_dirs.get(member.index, ""),
        })
    return rows


def history_rows(members, histories) -> list[dict]:
    return [{key: getattr(member, key) for key in KEY_COLUMNS[1:]} | {"member": member.name} | row
            for member, history in zip(members, histories) for row in history]


def _cells(rows: list[dict]) -> dict[tuple, list[dict]]:
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["method"], row["optimizer"], row["learning_rate"]), []).append(row)
    return cells


def summary_rows(rows: list[dict]) -> list[dict]:
    """Per method x optimizer x learning rate: counts by status, and mean ± 95% interval over seeds."""
    summary = []
    for (method, optimizer, rate), cell in _cells(rows).items():
        finished = [row for row in cell if row["status"] in ("ok", "stuck at chance")]
        val = stats.interval([row["val_accuracy"] for row in finished])
        test = stats.interval([row["test_accuracy"] for row in finished])
        summary.append({
            "method": method, "optimizer": optimizer, "learning_rate": rate, "members": len(cell),
            "ok": sum(row["status"] == "ok" for row in cell), "stuck": sum(row["status"] == "stuck at chance" for row in cell),
            "diverged": sum(row["status"] == "diverged" for row in cell),
            "val_accuracy_mean": val[0], "val_accuracy_std": val[1], "val_accuracy_ci95": val[2],
            "test_accuracy_mean": test[0], "test_accuracy_std": test[1], "test_accuracy_ci95": test[2],
        })
    return summary


def best_rate(summary: list[dict], method: str, optimizer: str) -> dict | None:
    """The cell with the best mean validation accuracy among the rates where no member diverged."""
    cells = [cell for cell in summary if cell["method"] == method and cell["optimizer"] == optimizer
             and cell["diverged"] == 0 and cell["members"] and math.isfinite(cell["val_accuracy_mean"])]
    return max(cells, key=lambda cell: cell["val_accuracy_mean"]) if cells else None


def best_rows(rows: list[dict], summary: list[dict], methods, optimizers, baseline: str) -> list[dict]:
    """Per optimizer x method: its best rate (on validation) and, at that rate, test accuracy over seeds
    with a paired t-test (paired by seed) against ``baseline`` at the baseline's own best rate."""
    def test_by_seed(method, optimizer, rate):
        return {row["seed"]: row["test_accuracy"] for row in rows
                if (row["method"], row["optimizer"], row["learning_rate"]) == (method, optimizer, rate)}

    best = []
    for optimizer in optimizers:
        reference = best_rate(summary, baseline, optimizer)
        for method in methods:
            cell = best_rate(summary, method, optimizer)
            entry = {"optimizer": optimizer, "method": method, "baseline": baseline,
                     "baseline_learning_rate": reference["learning_rate"] if reference else ""}
            if cell is None:
                best.append(entry | {"learning_rate": "", "members": 0, "failed": "", "pairs": 0,
                                     "test_accuracy_diff_mean": math.nan, "p_value": math.nan}
                            | dict.fromkeys(BEST_COLUMNS[5:10], math.nan))
                continue
            entry |= {key: cell[key] for key in ("learning_rate", "members", "val_accuracy_mean", "val_accuracy_ci95",
                                                  "test_accuracy_mean", "test_accuracy_std", "test_accuracy_ci95")}
            entry["failed"] = cell["stuck"] + cell["diverged"]
            pairs, diff, p = 0, math.nan, math.nan
            if reference and method != baseline:
                pairs, diff, p = stats.paired(test_by_seed(method, optimizer, cell["learning_rate"]),
                                              test_by_seed(baseline, optimizer, reference["learning_rate"]))
            best.append(entry | {"pairs": pairs, "test_accuracy_diff_mean": diff, "p_value": p})
    return best


def format_best(best: list[dict]) -> str:
    header = (f"{'optimizer':<9} {'method':<10} {'best rate':>9}  {'val_accuracy (±95%)':<21} "
              f"{'test_accuracy (±95%)':<21} vs baseline at its best rate (paired by seed)")
    lines = [header, "-" * len(header)]
    for row in best:
        rate = f"{row['learning_rate']:g}" if row["learning_rate"] != "" else "—"
        versus = "baseline" if row["method"] == row["baseline"] else _versus(row)
        lines.append(f"{row['optimizer']:<9} {row['method']:<10} {rate:>9}  "
                     f"{stats.format_mean(row['val_accuracy_mean'], row['val_accuracy_ci95']):<21} "
                     f"{stats.format_mean(row['test_accuracy_mean'], row['test_accuracy_ci95']):<21} {versus}")
    return "\n".join(lines)


def _versus(row: dict) -> str:
    if row["learning_rate"] == "":
        return "every rate diverged"
    diff, p = row["test_accuracy_diff_mean"], row["p_value"]
    if math.isnan(diff):
        return "—"
    return f"{diff:+.4f}" + ("" if math.isnan(p) else f" (p={p:.3g})")


def verdict_word(diff: float, p: float) -> str:
    """"better", "worse" (paired t-test, p below SIGNIFICANT) or "no significant difference"."""
    if math.isnan(p) or p >= SIGNIFICANT:
        return "no significant difference"
    return "better" if diff > 0 else "worse"


def answer(best: list[dict]) -> list[str]:
    """The study's answer in words: one line per optimizer."""
    lines = []
    for optimizer in dict.fromkeys(row["optimizer"] for row in best):
        block = [row for row in best if row["optimizer"] == optimizer]
        base = next(row for row in block if row["method"] == row["baseline"])
        if base["learning_rate"] == "":
            lines.append(f"{optimizer}: the baseline {base['method']} diverged at every rate; nothing to compare against")
            continue
        parts = []
        for row in block:
            if row is base:
                continue
            if row["learning_rate"] == "":
                parts.append(f"{row['method']} diverged at every rate")
                continue
            diff, p = row["test_accuracy_diff_mean"], row["p_value"]
            verdict = verdict_word(diff, p)
            p_text = "" if math.isnan(p) else f", p={p:.2g}"
            parts.append(f"{row['method']} {verdict} ({diff * 100:+.2f} points at lr {row['learning_rate']:g}{p_text})")
        lines.append(f"{optimizer}, each method at its own best learning rate (chosen on validation), test accuracy "
                     f"against {base['method']} ({base['test_accuracy_mean']:.4f} at lr {base['learning_rate']:g}): "
                     + ("; ".join(parts) if parts else "the only method trained"))
    return lines
