"""The tables of a study, built from plain rows: members, their histories, per-cell summaries, and each
method at its best learning rate (chosen on validation, reported on test, tested against the baseline),
within each model and optimizer.

Every table has a ``model`` column (the network, config.MODELS); a table written before models were an
axis has none, and its rows are the mlp's (``model_of``). answer.py puts best.csv's rows into words.
"""

from __future__ import annotations

import enum
import math

from fmnist.reporting import stats
from fmnist.store import artifacts

CHANCE = 0.1  # ten balanced classes
STUCK_BELOW = 1.5 * CHANCE  # a final validation accuracy this low means the member did not learn


class Status(str, enum.Enum):
    """What became of a run or a member; the value is the word members.csv, metrics.json, TensorBoard and
    the report show (a Status equals its word, so rows read back from CSV compare equal)."""

    OK = "ok"
    STUCK = "stuck at chance"
    DIVERGED = "diverged"
    TRAINING = "training"
    PENDING = "pending"

    __str__ = str.__str__  # the word, in CSV files and f-strings

    @property
    def finished(self) -> bool:
        """Trained to the end and tested (a diverged model is not tested)."""
        return self in (Status.OK, Status.STUCK)

MEMBER_COLUMNS = ("member", "model", "method", "optimizer", "learning_rate", "seed", "status", "diverged_epoch", "epochs",
                  "val_accuracy", "val_loss", "best_val_accuracy", "best_epoch", "test_accuracy", "test_loss",
                  "seconds", "program", "run_dir")
KEY_COLUMNS = ("member", "model", "method", "optimizer", "learning_rate", "seed")
HISTORY_COLUMNS = KEY_COLUMNS + artifacts.HISTORY_COLUMNS
SUMMARY_COLUMNS = ("model", "method", "optimizer", "learning_rate", "members", "ok", "stuck", "diverged",
                   "val_accuracy_mean", "val_accuracy_std", "val_accuracy_low", "val_accuracy_high",
                   "test_accuracy_mean", "test_accuracy_std", "test_accuracy_low", "test_accuracy_high")
BEST_COLUMNS = ("model", "optimizer", "method", "learning_rate", "edge", "members", "failed", "val_accuracy_mean",
                "val_accuracy_low", "val_accuracy_high", "test_accuracy_mean", "test_accuracy_std", "test_accuracy_low",
                "test_accuracy_high", "baseline", "baseline_learning_rate", "pairs", "test_accuracy_diff_mean",
                "diff_low", "diff_high", "p_value", "detectable_difference", "verdict", "why", "per_seed", "run_dir")
MEANS = ("val_accuracy_mean", "val_accuracy_low", "val_accuracy_high", "test_accuracy_mean", "test_accuracy_std",
         "test_accuracy_low", "test_accuracy_high")  # a cell's numbers that best.csv repeats


def line_name(model: str, optimizer: str) -> str:
    """A model and optimizer in a file or program name: "sgd" for the mlp (as before models were an axis),
    "mlp-bn-sgd" for another network."""
    return optimizer if model == "mlp" else f"{model}-{optimizer}"


def model_of(row: dict) -> str:
    """A table row's network: the mlp for a row of a table written before models were an axis."""
    return row.get("model") or "mlp"


def status_of(history: list[dict], epochs: int, tested: bool) -> tuple[Status, int | str]:
    """ok / stuck at chance / diverged (with the epoch) / training / pending."""
    if not history:
        return Status.PENDING, ""
    last = history[-1]
    if not all(math.isfinite(last[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")):
        return Status.DIVERGED, last["epoch"]
    if len(history) < epochs or not tested:
        return Status.TRAINING, ""
    return (Status.STUCK if last["val_accuracy"] < STUCK_BELOW else Status.OK), ""


def member_rows(members, histories, tests: dict, epochs: int, program_sizes: dict, run_dirs: dict) -> list[dict]:
    """One row per member, in member order. ``tests``: member index -> test metrics of finished programs;
    ``program_sizes``: member index -> (program name, members in it); ``run_dirs``: index -> folder name."""
    rows = []
    for member, history in zip(members, histories):
        status, diverged_epoch = status_of(history, epochs, member.index in tests)
        finite = [row for row in history if math.isfinite(row["val_accuracy"])]
        best = max(finite, key=lambda row: row["val_accuracy"]) if finite else None
        last = history[-1] if history else {}
        test = tests.get(member.index, {}) if status.finished else {}
        program, size = program_sizes[member.index]
        rows.append({
            "member": member.name, "model": member.model, "method": member.method, "optimizer": member.optimizer,
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
        cells.setdefault((model_of(row), row["method"], row["optimizer"], row["learning_rate"]), []).append(row)
    return cells


def summary_rows(rows: list[dict]) -> list[dict]:
    """Per model x method x optimizer x learning rate: counts by status, and mean with a 95% interval over
    seeds."""
    summary = []
    for (model, method, optimizer, rate), cell in _cells(rows).items():
        finished = [row for row in cell if Status(row["status"]).finished]
        val = stats.interval([row["val_accuracy"] for row in finished])
        test = stats.interval([row["test_accuracy"] for row in finished])
        summary.append({
            "model": model, "method": method, "optimizer": optimizer, "learning_rate": rate, "members": len(cell),
            "ok": sum(row["status"] == Status.OK for row in cell), "stuck": sum(row["status"] == Status.STUCK for row in cell),
            "diverged": sum(row["status"] == Status.DIVERGED for row in cell),
            **dict(zip(("val_accuracy_mean", "val_accuracy_std", "val_accuracy_low", "val_accuracy_high"), val)),
            **dict(zip(("test_accuracy_mean", "test_accuracy_std", "test_accuracy_low", "test_accuracy_high"), test)),
        })
    return summary


def _tried(summary: list[dict], method: str, optimizer: str, model: str = "mlp") -> list[dict]:
    """The cells of one method, optimizer and model that hold members, by learning rate."""
    return sorted((cell for cell in summary if cell["method"] == method and cell["optimizer"] == optimizer
                   and model_of(cell) == model and cell["members"]), key=lambda cell: float(cell["learning_rate"]))


def best_rate(summary: list[dict], method: str, optimizer: str, model: str = "mlp") -> dict | None:
    """The cell with the best mean validation accuracy among the rates that learned: no member diverged
    and at least one finished above chance (ties: the middle rate). None: no rate learned."""
    cells = [cell for cell in _tried(summary, method, optimizer, model)
             if cell["diverged"] == 0 and cell["ok"] and math.isfinite(cell["val_accuracy_mean"])]
    if not cells:
        return None
    top = max(cell["val_accuracy_mean"] for cell in cells)
    tied = [cell for cell in cells if cell["val_accuracy_mean"] == top]
    return tied[(len(tied) - 1) // 2]  # among equals the middle rate: the optimum is a plateau, not its edge


def edge_of(summary: list[dict], method: str, optimizer: str, rate: float, model: str = "mlp") -> str:
    """"lowest" or "highest" when ``rate`` is the smallest or largest of several rates tried, else ""."""
    rates = [float(cell["learning_rate"]) for cell in _tried(summary, method, optimizer, model)]
    if len(rates) < 2:
        return ""  # one rate (a comparison): nothing was searched, so nothing sits on an edge
    return "lowest" if float(rate) == rates[0] else "highest" if float(rate) == rates[-1] else ""


def no_rate_hint(summary: list[dict], method: str, optimizer: str, model: str = "mlp") -> str:
    """Where to look when no rate learned: towards the end of the rates tried that came closest."""
    cells = _tried(summary, method, optimizer, model)
    if len(cells) < 2:
        return "try other rates"
    finite = [cell for cell in cells if not cell["diverged"] and math.isfinite(cell["val_accuracy_mean"])]
    if cells[0]["diverged"] or not finite:
        return "try lower rates"
    closest = max(finite, key=lambda cell: cell["val_accuracy_mean"])
    return "try lower rates" if closest is cells[0] else "try higher rates" if closest is cells[-1] else "try other rates"


def _per_seed(rows: list[dict]) -> str:
    """Each seed's outcome where the seeds split (some learned, some did not); "" where they agree."""
    if len({row["status"] for row in rows}) < 2:
        return ""
    return "; ".join(f"seed {row['seed']} {row['status']} {row['test_accuracy']:.4f}"
                     for row in sorted(rows, key=lambda row: row["seed"]))


def best_rows(rows: list[dict], summary: list[dict], methods, optimizers, baseline: str,
              models=("mlp",)) -> list[dict]:
    """Per model x optimizer x method: its best rate (on validation) and, at that rate, test accuracy over
    seeds compared, paired by seed, with ``baseline`` (of the same model and optimizer) at the baseline's
    own best rate; the verdict and why."""
    def cell_rows(model, method, optimizer, rate):
        return [row for row in rows if (model_of(row), row["method"], row["optimizer"], row["learning_rate"])
                == (model, method, optimizer, rate)]

    def test_by_seed(cell):
        return {row["seed"]: row["test_accuracy"] for row in cell}

    best = []
    for model, optimizer in [(model, optimizer) for model in models for optimizer in optimizers]:
        reference = best_rate(summary, baseline, optimizer, model)
        reference_edge = edge_of(summary, baseline, optimizer, reference["learning_rate"], model) if reference else ""
        for method in methods:
            cell = best_rate(summary, method, optimizer, model)
            entry = dict.fromkeys(BEST_COLUMNS, math.nan) | {
                "model": model, "optimizer": optimizer, "method": method, "baseline": baseline, "learning_rate": "", "edge": "",
                "members": 0, "failed": "", "pairs": 0, "per_seed": "", "run_dir": "",
                "baseline_learning_rate": reference["learning_rate"] if reference else ""}
            if cell is None:
                tried = _tried(summary, method, optimizer, model)
                if len(tried) == 1:  # one rate (a comparison): its numbers, though they are no best rate
                    entry |= {key: tried[0][key] for key in MEANS} | {
                        "members": tried[0]["members"], "failed": tried[0]["stuck"] + tried[0]["diverged"]}
                best.append(entry | {"verdict": "no rate learned", "why": no_rate_hint(summary, method, optimizer, model)})
                continue
            mine = cell_rows(model, method, optimizer, cell["learning_rate"])
            entry |= {key: cell[key] for key in ("learning_rate", "members", *MEANS)}
            entry |= {"failed": cell["stuck"] + cell["diverged"], "per_seed": _per_seed(mine),
                      "edge": edge_of(summary, method, optimizer, cell["learning_rate"], model),
                      "run_dir": next((row["run_dir"] for row in mine if row.get("run_dir")), "")}
            if method == baseline:
                entry |= {"verdict": "baseline", "why": ""}
            if method == baseline or reference is None:
                best.append(entry | ({} if method == baseline else
                                     {"verdict": "not judged", "why": f"the baseline {baseline} learned at no rate"}))
                continue
            result = stats.paired(test_by_seed(mine),
                                  test_by_seed(cell_rows(model, baseline, optimizer, reference["learning_rate"])))
            entry |= {"pairs": result.pairs, "test_accuracy_diff_mean": result.diff, "diff_low": result.low,
                      "diff_high": result.high, "p_value": result.p_value, "detectable_difference": result.detectable}
            if entry["edge"] or reference_edge:
                who, edge = (method, entry["edge"]) if entry["edge"] else (f"the baseline {baseline}", reference_edge)
                entry |= {"verdict": "not judged", "why": f"{who}'s best rate is the {edge} tried; extend the grid"}
            else:
                entry["verdict"], entry["why"] = stats.judge(result)
            best.append(entry)
    return best


def several_models(rows: list[dict]) -> bool:
    """Whether ``rows`` name a network other than the mlp: then tables and lines show the model."""
    return any(model_of(row) != "mlp" for row in rows)
