"""``compare``: normalization methods x seeds at one learning rate and one optimizer.

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
from fmnist.reporting import plots, tables
from fmnist.reporting.report import write_report
from fmnist.reporting.tables import Status
from fmnist.runtime import is_main_process
from fmnist.store import artifacts, studies
from fmnist.training.study import run_study

RUN_COLUMNS = ("method", "seed", "status", "diverged", "val_accuracy", "val_loss", "best_val_accuracy",
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


def summarize(rows: list[dict], methods: list[str], baseline: str) -> list[dict]:
    """Per method (``rows``: members.csv rows of one rate and optimizer): mean with a 95% interval, and
    the paired comparison with the baseline and its verdict, as a sweep's best.csv has them."""
    optimizers = list(dict.fromkeys(row["optimizer"] for row in rows))
    return tables.best_rows(rows, tables.summary_rows(rows), methods, optimizers, baseline)


def format_table(summary: list[dict]) -> str:
    return tables.format_best(summary, rate_label="rate")


@dataclasses.dataclass
class Comparison:
    folder: Path
    rows: list[dict]
    summary: list[dict]
    report: Path | None = None  # report.html (written by process 0)


def study_config(methods: list[str], seeds: int, config: TrainConfig, baseline: str | None) -> SweepConfig:
    """The sweep a comparison is: its methods and seeds at config's learning rate and optimizer."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"seeds {seeds}: must be an integer >= 1", "seeds")
    if config.model != "mlp":  # a study's members share one compiled program of the tutorial's network
        raise UsageError(f"model {config.model!r}: a comparison trains the tutorial's mlp only", "model")
    return SweepConfig(methods=tuple(methods), learning_rates=(config.learning_rate,), optimizers=(config.optimizer,),
                       seeds=seeds, seed=config.seed, epochs=config.epochs, batch_size=config.batch_size,
                       valid_size=config.valid_size, baseline=baseline, save_models="all", data_dir=config.data_dir,
                       verify=config.verify)


def compare(methods=COMPARE_METHODS, seeds: int = COMPARE_SEEDS, config: TrainConfig = TrainConfig(), output_dir=None,
            baseline: str | None = None,
            *, resume: bool = False, runs_root="runs", log=print, live: bool | None = None,
            should_stop=None) -> Comparison:
    """Train every method with seeds config.seed, config.seed+1, …; write runs.csv, summary.csv and plots.

    ``resume``: ``output_dir`` is an earlier comparison; finished members are kept and the rest trained.
    """
    settings = study_config(methods, seeds, config, baseline)
    baseline = settings.baseline
    result = run_study(settings, output_dir, kind="compare", resume=resume, runs_root=runs_root, log=log, live=live,
                       should_stop=should_stop)
    rows = [{key: row[key] for key in RUN_COLUMNS if key in row} | {"diverged": "yes" if row["status"] == Status.DIVERGED else "no"}
            for row in result.rows]
    for number, row in enumerate(rows, 1):
        log(f"[{number}/{len(rows)}] {row['method']} seed {row['seed']}: {row['status']}, val_accuracy "
            f"{row['val_accuracy']:.4f}, test_accuracy {row['test_accuracy']:.4f} ({row['seconds']:.1f}s)")
    summary = summarize(result.rows, methods, baseline)
    if is_main_process():
        artifacts.write_csv(result.folder / "runs.csv", rows, RUN_COLUMNS)
        artifacts.write_csv(result.folder / "summary.csv", summary, SUMMARY_COLUMNS)
        histories = {method: [history for member, history in zip(result.members, result.histories)
                              if member.method == method] for method in methods}
        plots.plot_across_seeds(histories, "val_accuracy", result.folder / "val_accuracy.png")
        plots.plot_across_seeds(histories, ("loss", "val_loss"), result.folder / "loss.png")
        return Comparison(result.folder, rows, summary, write_report(result.folder))
    return Comparison(result.folder, rows, summary)


def resume_arguments(folder) -> dict:
    """What an earlier comparison in ``folder`` was asked to do (from its study.json)."""
    settings = studies.read_study(folder, "compare")["settings"]
    config = TrainConfig(epochs=settings["epochs"], batch_size=settings["batch_size"],
                         learning_rate=settings["learning_rates"][0], optimizer=settings["optimizers"][0],
                         seed=settings["seed"], valid_size=settings["valid_size"], data_dir=settings["data_dir"],
                         verify=settings["verify"])
    return {"methods": settings["methods"], "seeds": settings["seeds"], "baseline": settings["baseline"],
            "config": config}
