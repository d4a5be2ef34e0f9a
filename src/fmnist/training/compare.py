"""``compare``: normalization methods x seeds (x models) at one learning rate and one optimizer.

A sweep with one cell per method (study.run_study trains it: the same engine, folders and resume),
reported the way the tutorial asks its question: runs.csv, a summary with 95% intervals and a paired
t-test against the baseline, and curves across seeds. Every member keeps its run folder
``<method>-seed<seed>`` with its model. A member that diverges or stays at chance is a result, recorded
as such; the comparison goes on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fmnist import normalization
from fmnist.config import COMPARE_METHODS, COMPARE_SEEDS, SweepConfig, TrainConfig
from fmnist.errors import UsageError
from fmnist.reporting import study_plots, tables
from fmnist.reporting.answer import format_best
from fmnist.reporting.report import write_report
from fmnist.reporting.tables import Status
from fmnist.runtime import is_main_process
from fmnist.store import artifacts
from fmnist.training.study import run_study

RUN_COLUMNS = ("model", "method", "seed", "status", "diverged", "val_accuracy", "val_loss", "best_val_accuracy",
               "best_epoch", "test_accuracy", "seconds", "run_dir")
SUMMARY_COLUMNS = tables.BEST_COLUMNS  # a comparison is a sweep of one rate: the same table, the same verdicts


def parse_methods(text: str) -> list[str]:
    methods = [name.strip() for name in text.split(",") if name.strip()]
    if not methods:
        raise UsageError("methods: name at least one method", "methods")
    for name in methods:
        normalization.get(name)  # UsageError listing the valid names
    if len(set(methods)) != len(methods):
        raise UsageError(f"methods {text!r}: a method is named twice", "methods")
    return methods


def summarize(rows: list[dict], config: SweepConfig) -> list[dict]:
    """Per model and method (``rows``: members.csv rows of one rate and optimizer): mean with a 95%
    interval, and the paired comparison with the baseline and its verdict, as a sweep's best.csv has them."""
    return tables.best_rows(rows, tables.summary_rows(rows), config.methods, config.optimizers, config.baseline,
                            config.models)


def format_table(summary: list[dict]) -> str:
    return format_best(summary, rate_label="rate")


@dataclasses.dataclass
class Comparison:
    folder: Path
    rows: list[dict]
    summary: list[dict]
    report: Path | None = None  # report.html (written by process 0)


def comparison(methods=COMPARE_METHODS, seeds: int = COMPARE_SEEDS, run: TrainConfig | None = None,
               baseline: str | None = None, models=None) -> SweepConfig:
    """The study a comparison is: ``methods`` x ``seeds`` (x ``models``; default ``run.model``) at the
    learning rate and optimizer of ``run`` (default the tutorial's), with its epochs, batch size, split and
    data, every model kept."""
    run = run or TrainConfig()
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"seeds {seeds}: must be an integer >= 1", "seeds")
    return SweepConfig(methods=tuple(methods), learning_rates=(run.learning_rate,), optimizers=(run.optimizer,),
                       models=tuple(models or (run.model,)), seeds=seeds, seed=run.seed, epochs=run.epochs,
                       batch_size=run.batch_size, valid_size=run.valid_size, baseline=baseline, save_models="all",
                       data_dir=run.data_dir, verify=run.verify)


def compare(config: SweepConfig | None = None, output_dir=None, *, resume: bool = False, runs_root="runs",
            log=print, live: bool | None = None, should_stop=None) -> Comparison:
    """Train every method (of every model) with seeds config.seed, config.seed+1, …; write runs.csv,
    summary.csv and plots. ``config``: one learning rate and one optimizer (``comparison`` makes it; by
    default the tutorial's four methods, three seeds).

    ``resume``: ``output_dir`` is an earlier comparison; finished members are kept and the rest trained.
    """
    config = config or comparison()
    if len(config.learning_rates) != 1 or len(config.optimizers) != 1 or config.save_models != "all":
        raise UsageError("a comparison trains one learning rate and one optimizer and keeps every model; "
                         "fmnist sweep searches rates and optimizers")
    result = run_study(config, output_dir, kind="compare", resume=resume, runs_root=runs_root, log=log, live=live,
                       should_stop=should_stop)
    rows = [{key: row[key] for key in RUN_COLUMNS if key in row} | {"diverged": "yes" if row["status"] == Status.DIVERGED else "no"}
            for row in result.rows]
    several = config.shows_models
    for number, row in enumerate(rows, 1):
        log(f"[{number}/{len(rows)}] {row['model'] + ' ' if several else ''}{row['method']} seed {row['seed']}: "
            f"{row['status']}, val_accuracy {row['val_accuracy']:.4f}, test_accuracy {row['test_accuracy']:.4f} "
            f"({row['seconds']:.1f}s)")
    summary = summarize(result.rows, config)
    if is_main_process():
        artifacts.write_csv(result.folder / "runs.csv", rows, RUN_COLUMNS)
        artifacts.write_csv(result.folder / "summary.csv", summary, SUMMARY_COLUMNS)
        histories = {(f"{model} {method}" if several else method):
                     [history for member, history in zip(result.members, result.histories)
                      if (member.model, member.method) == (model, method)]
                     for model in config.models for method in config.methods}
        study_plots.plot_across_seeds(histories, "val_accuracy", result.folder / "val_accuracy.png")
        study_plots.plot_across_seeds(histories, ("loss", "val_loss"), result.folder / "loss.png")
        return Comparison(result.folder, rows, summary, write_report(result.folder))
    return Comparison(result.folder, rows, summary)
