"""``fmnist sweep``: a study (study.py) of every model x optimizer x method x learning rate x seed, then
summary.csv, best.csv (each method at its best rate, tested against the baseline of its model and
optimizer), a heatmap and the best rates' curves per model and optimizer, and report.html."""

from __future__ import annotations

from fmnist.config import SweepConfig
from fmnist.reporting import study_plots, tables
from fmnist.reporting.report import write_report
from fmnist.runtime import is_main_process
from fmnist.store import artifacts
from fmnist.training.grid import lines_of
from fmnist.training.study import StudyResult, run_study


def sweep(config: SweepConfig, output_dir=None, *, resume: bool = False, runs_root="runs", log=print,
          live: bool | None = None, should_stop=None) -> tuple[StudyResult, list[dict]]:
    """``fmnist sweep``: the study, then summary.csv, best.csv, a heatmap and best-rate curves per model
    and optimizer (heatmap-sgd.png for the mlp, heatmap-mlp-bn-sgd.png for another network). Returns the
    result and the rows of best.csv."""
    result = run_study(config, output_dir, kind="sweep", resume=resume, runs_root=runs_root, log=log, live=live,
                       should_stop=should_stop)
    summary = tables.summary_rows(result.rows)
    best = tables.best_rows(result.rows, summary, config.methods, config.optimizers, config.baseline, config.models)
    if is_main_process():
        artifacts.write_csv(result.folder / "summary.csv", summary, tables.SUMMARY_COLUMNS)
        artifacts.write_csv(result.folder / "best.csv", best, tables.BEST_COLUMNS)
        for model, optimizer in lines_of(config):
            line, title = tables.line_name(model, optimizer), f"{model} {optimizer}" if config.shows_models else optimizer
            mine = [row for row in best if (tables.model_of(row), row["optimizer"]) == (model, optimizer)]
            study_plots.plot_heatmap([row for row in summary if row["model"] == model], optimizer, config.methods, mine,
                               result.folder / f"heatmap-{line}.png", title)
            chosen = {row["method"]: [result.histories[i] for i, member in enumerate(result.members)
                                      if (member.model, member.method, member.optimizer, member.learning_rate)
                                      == (model, row["method"], optimizer, row["learning_rate"])]
                      for row in mine if row["learning_rate"] != ""}
            labels = {row["method"]: f"lr {row['learning_rate']:g}" for row in mine if row["learning_rate"] != ""}
            study_plots.plot_best_curves(chosen, labels, title, result.folder / f"curves-{line}.png")
        result.report = write_report(result.folder)
    return result, best
