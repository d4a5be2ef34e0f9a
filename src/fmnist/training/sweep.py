"""``fmnist sweep``: a study (study.py) of every method x optimizer x learning rate x seed, then
summary.csv, best.csv (each method at its best rate, tested against the baseline), a heatmap and the
best rates' curves per optimizer, and report.html."""

from __future__ import annotations

from fmnist.config import SweepConfig
from fmnist.reporting import plots, tables
from fmnist.reporting.report import write_report
from fmnist.runtime import is_main_process
from fmnist.store import artifacts
from fmnist.training.study import StudyResult, run_study


def sweep(config: SweepConfig, output_dir=None, *, resume: bool = False, runs_root="runs", log=print,
          live: bool | None = None, should_stop=None) -> tuple[StudyResult, list[dict]]:
    """``fmnist sweep``: the study, then summary.csv, best.csv, a heatmap and best-rate curves per
    optimizer. Returns the result and the rows of best.csv."""
    result = run_study(config, output_dir, kind="sweep", resume=resume, runs_root=runs_root, log=log, live=live,
                       should_stop=should_stop)
    summary = tables.summary_rows(result.rows)
    best = tables.best_rows(result.rows, summary, config.methods, config.optimizers, config.baseline)
    if is_main_process():
        artifacts.write_csv(result.folder / "summary.csv", summary, tables.SUMMARY_COLUMNS)
        artifacts.write_csv(result.folder / "best.csv", best, tables.BEST_COLUMNS)
        for optimizer in config.optimizers:
            plots.plot_heatmap(summary, optimizer, config.methods, [row for row in best if row["optimizer"] == optimizer],
                               result.folder / f"heatmap-{optimizer}.png")
            chosen = {row["method"]: [result.histories[i] for i, member in enumerate(result.members)
                                      if (member.method, member.optimizer, member.learning_rate)
                                      == (row["method"], optimizer, row["learning_rate"])]
                      for row in best if row["optimizer"] == optimizer and row["learning_rate"] != ""}
            labels = {row["method"]: f"lr {row['learning_rate']:g}" for row in best
                      if row["optimizer"] == optimizer and row["learning_rate"] != ""}
            plots.plot_best_curves(chosen, labels, optimizer, result.folder / f"curves-{optimizer}.png")
        result.report = write_report(result.folder)
    return result, best


