"""``sweep``: methods x optimizers x learning rates x seeds, many members per compiled program.

grid -> members (in a fixed order) -> programs: the members of one optimizer, in pieces of at most
``members_per_program`` (grid.py) -> engines.members trains each program epoch by epoch, checkpointing after
every epoch -> tables (tables.py) and figures (plots.py). ``fmnist compare`` is the case of one
optimizer and one learning rate (compare.py).

The folder (runs.py owns its layout): study.json, members.csv, history.csv, the kind's own tables and
figures, programs/<name>/ (progress and checkpoints while it trains) and one run folder per kept model. With
several processes (``jax.distributed``), each writes the state and models of the members on its own
devices; process 0 writes everything else.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from fmnist import data, normalization
from fmnist.config import SweepConfig, TrainConfig
from fmnist.errors import Interrupted
from fmnist.reporting import events, plots, tables
from fmnist.reporting.report import write_report
from fmnist.reporting.tables import Status
from fmnist.runtime import any_process, barrier, is_main_process, tell_resume
from fmnist.store import artifacts, program_files, studies
from fmnist.store.runs import create_run
from fmnist.training.grid import (
    StudyMember,
    describe_grid,
    grid_extension,
    members_of,
    plan_programs,
)
from fmnist.training.progress import Clock, Progress
from fmnist.training.resume import resumed_programs
from fmnist.training.train import write_results


@dataclasses.dataclass
class StudyResult:
    folder: Path
    config: SweepConfig
    members: list[StudyMember]
    rows: list[dict]  # members.csv
    histories: list[list[dict]]  # by member
    report: Path | None = None  # report.html (process 0 writes it once the kind's own tables are there)


def run_study(config: SweepConfig, output_dir=None, *, kind: str = "sweep", resume: bool = False,
              runs_root="runs", log=print, live: bool | None = None, should_stop=None) -> StudyResult:
    """Train every member of ``config``; write members.csv, history.csv and the kept models.

    ``resume``: ``output_dir`` is an earlier study of the same kind; finished programs are kept, an
    interrupted one continues from its last checkpointed epoch. ``should_stop``: polled after every
    checkpoint (on every process); a signal number stops the study there with ``Interrupted``.
    """
    import jax

    members = members_of(config, kind)
    if resume:  # a refused change of settings costs no data loading
        programs = resumed_programs(output_dir, studies.read_study(output_dir, kind), config, kind, members)
    dataset = data.load(config.data_dir, verify=config.verify)
    splits = data.split(dataset, config.valid_size)  # a bad valid_size fails before any folder is made
    if resume:
        folder = Path(output_dir)
        recorded = studies.reopen_study(folder, kind, dataset)
        for member in members:  # now, not after training: a foreign run where a member's folder belongs
            studies.kept_member(folder / member.name, recorded.get("study_id", ""))
        if programs != recorded["programs"]:
            studies.record_study(folder, recorded, config, programs)
        artifacts.remove_temporaries(folder)
    else:
        programs = plan_programs(config, members)
        folder = studies.create_study(config, output_dir, kind, runs_root, dataset, programs)
    tell_resume(should_stop, f"{studies.KIND_COMMANDS[kind]} --resume {folder}")  # for a second signal's message
    stats = {method: normalization.get(method).fit(splits.x_train) for method in config.methods}
    devices = jax.devices()
    log(f"{kind}: {len(members)} members ({describe_grid(config)}), {config.epochs} epochs, "
        f"{len(programs)} program{'s' * (len(programs) != 1)} on {len(devices)} {devices[0].platform} "
        f"device{'s' * (len(devices) != 1)}" + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""))
    state = _Tables(folder, config, members, programs)
    clock = Clock(config.epochs * len(members))
    done, stop = 0, None
    while True:
        for number, program in enumerate(programs[done:], done + 1):
            _train_program(program, f"[{program['name']} {number}/{len(programs)}]", config, folder, members, stats,
                           splits, state, clock, log, live, should_stop, kind)
            stop = any_process(should_stop() if should_stop else None)
            if stop and number < len(programs):
                raise Interrupted(stop, f"after program {program['name']}", f"{studies.KIND_COMMANDS[kind]} --resume {folder}")
        done = len(programs)
        added = grid_extension(config, state.rows()) if kind == "sweep" else ()
        if not added:
            break
        if stop:  # the extension is decided again, the same way, on resume
            raise Interrupted(stop, "before extending the grid", f"{studies.KIND_COMMANDS[kind]} --resume {folder}")
        config, members, programs = _extend(folder, config, kind, programs, added, state, clock, log)
    _save_models(folder, config, members, programs, state, stats, dataset)
    state.write()
    return StudyResult(folder, config, members, state.rows(), state.histories)


def _extend(folder, config, kind, programs, added, state, clock, log):
    """Add the members of the ``added`` cells as new programs, recorded in study.json before they train."""
    before = len(state.members)
    config = dataclasses.replace(config, extra_rates=config.extra_rates + added)
    members = members_of(config, kind)
    fresh = plan_programs(config, members[before:])
    fresh = [program | {"name": f"edge{len(programs) + number}-{program['optimizer']}"}
             for number, program in enumerate(fresh, 1)]
    studies.record_study(folder, studies.read_study(folder, kind), config, programs + fresh)
    state.grow(members, fresh)
    clock.total += config.epochs * (len(members) - before)
    log(f"{kind}: best rate on the edge of the rates tried, adding " + ", ".join(
        f"{method} {optimizer} lr {rate:g}" for optimizer, method, rate in added)
        + f" ({len(members) - before} members)")
    return config, members, programs + fresh


class _Tables:
    """What the study knows so far, and members.csv / history.csv written from it (process 0)."""

    def __init__(self, folder, config, members, programs):
        self.folder, self.config, self.members = folder, config, members
        self.histories: list[list[dict]] = [[] for _ in members]
        self.tests: dict[int, dict] = {}
        self.run_dirs: dict[int, str] = {}
        self.sizes = {index: (program["name"], len(program["members"])) for program in programs
                      for index in program["members"]}

    def grow(self, members, programs) -> None:
        """The members and programs a grid extension added."""
        self.members = members
        self.histories += [[] for _ in members[len(self.histories):]]
        self.sizes |= {index: (program["name"], len(program["members"])) for program in programs
                       for index in program["members"]}

    def rows(self) -> list[dict]:
        return tables.member_rows(self.members, self.histories, self.tests, self.config.epochs, self.sizes,
                                  self.run_dirs)

    def write(self) -> None:
        if is_main_process():
            artifacts.write_csv(self.folder / "members.csv", self.rows(), tables.MEMBER_COLUMNS)
            artifacts.write_csv(self.folder / "history.csv", tables.history_rows(self.members, self.histories),
                                tables.HISTORY_COLUMNS)


def _train_program(program, label, config, folder, members, stats, splits, state, clock, log, live, should_stop,
                   kind) -> None:
    from fmnist.engines.members import Member, MembersEngine

    name, indices = program["name"], program["members"]
    saved = program_files.read_progress(folder, name)
    if saved:
        for index, history in zip(indices, saved["history"]):
            state.histories[index] = history
        clock.add(sum(len(state.histories[index]) for index in indices), saved["seconds"])
    if saved and saved["done"]:
        for position, index in enumerate(indices):
            state.tests[index] = {key: values[position] for key, values in saved["test"].items()}
        events.write_members(folder, config, members, indices, state.histories, state.tests)
        log(f"{label} finished earlier: {len(indices)} members")
        return
    progress = Progress(config.epochs, live=live)
    engine = MembersEngine(program["optimizer"], [Member(members[i].method, members[i].learning_rate, members[i].seed)
                                                  for i in indices], stats, splits, config.batch_size, progress)
    first, seconds = 1, 0.0
    if saved:
        engine.load_state(program_files.read_program_state(folder, name, saved["epoch"]), saved["alive"])
        first, seconds = saved["epoch"] + 1, saved["seconds"]
        log(f"{label} resuming after epoch {saved['epoch']}")
    events.write_members(folder, config, members, indices, state.histories)  # the checkpointed epochs
    for epoch in range(first, config.epochs + 1):
        alive = engine.alive.copy()
        started = time.perf_counter()
        metrics = engine.train_epoch(epoch)
        elapsed = time.perf_counter() - started
        seconds += elapsed
        for position, index in enumerate(indices):
            if alive[position]:
                state.histories[index].append(
                    {"epoch": epoch, **{key: float(values[position]) for key, values in metrics.items()},
                     "epoch_seconds": elapsed})
        program_files.save_program(folder, name, engine, epoch, [state.histories[i] for i in indices], seconds)
        progress.clear()
        eta = clock.add(int(alive.sum()), elapsed)
        log(f"{label} epoch {epoch}/{config.epochs} {elapsed:.1f}s: "
            f"{_epoch_summary(members, indices, metrics, alive, engine.alive)}; {eta}")
        state.write()
        events.append_members(folder, members, indices, state.histories, epoch)
        stop = any_process(should_stop() if should_stop else None)
        if stop and epoch < config.epochs:
            raise Interrupted(stop, f"after epoch {epoch} of program {name}",
                              f"{studies.KIND_COMMANDS[kind]} --resume {folder}")
    test = engine.test_metrics()
    for position, index in enumerate(indices):
        state.tests[index] = {key: float(values[position]) for key, values in test.items()}
    program_files.finish_program(folder, name, [state.histories[i] for i in indices], engine.alive, seconds,
                              {key: values.tolist() for key, values in test.items()})
    events.write_members(folder, config, members, indices, state.histories, state.tests)


def _epoch_summary(members, indices, metrics, alive_before, alive_after) -> str:
    val = np.where(alive_before, metrics["val_accuracy"], np.nan)
    text = f"{int(alive_before.sum())} members"
    if np.isfinite(val).any():
        best = int(np.nanargmax(val))
        member = members[indices[best]]
        text += f", best val_accuracy {val[best]:.4f} ({member.method}, lr {member.learning_rate:g}, seed {member.seed})"
    newly = int((alive_before & ~alive_after).sum())
    if newly:
        text += f", {newly} diverged"
    return text


def _kept(config: SweepConfig, members: list[StudyMember], rows: list[dict]) -> list[int]:
    """The members whose models are saved: all, none, or per method x optimizer the first finished seed
    at its best learning rate."""
    if config.save_models == "all":
        return [member.index for member in members]
    if config.save_models == "none":
        return []
    summary = tables.summary_rows(rows)
    kept = []
    for optimizer in config.optimizers:
        for method in config.methods:
            cell = tables.best_rate(summary, method, optimizer)
            if cell is None:
                continue
            chosen = [row_index for row_index, row in enumerate(rows) if (row["method"], row["optimizer"], row["learning_rate"])
                      == (method, optimizer, cell["learning_rate"]) and Status(row["status"]).finished]
            kept += chosen[:1]
    return kept


def _save_models(folder, config, members, programs, state, stats, dataset) -> None:
    """Each kept member's run folder with its model, written by the process that holds the member."""
    import jax

    from fmnist.engines.program import read_state
    from fmnist.model import build_model

    rows = state.rows()
    study_id = studies.read_study(folder).get("study_id", "")
    kept = set(_kept(config, members, rows))
    state.run_dirs = {index: members[index].name for index in kept}
    splits = data.split(dataset, config.valid_size)
    for program in programs:
        positions = [position for position, index in enumerate(program["members"]) if index in kept
                     and not studies.kept_member(folder / members[index].name, study_id)]
        if not positions:
            continue
        saved = program_files.read_program_state(folder, program["name"], config.epochs, positions,
                                              process=jax.process_index())
        for position, arrays in saved.items():
            member, row = members[program["members"][position]], rows[program["members"][position]]
            run_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, learning_rate=member.learning_rate,
                                     optimizer=member.optimizer, seed=member.seed, normalization=member.method,
                                     valid_size=config.valid_size, name=member.name, data_dir=config.data_dir,
                                     verify=config.verify)
            diverged = row["status"] == Status.DIVERGED
            metrics = {"diverged": diverged, "status": row["status"], "split_sizes": splits.sizes(),
                       "wall_seconds": row["seconds"]}
            model = None
            if not diverged:
                metrics |= {"test_loss": row["test_loss"], "test_accuracy": row["test_accuracy"]}
                model = build_model(member.method, stats[member.method], member.learning_rate, member.optimizer)
                read_state(model)  # builds the optimizer's variables
                for variables, prefix in ((model.trainable_variables, "trainable"),
                                          (model.optimizer.variables, "optimizer")):
                    for number, variable in enumerate(variables):
                        variable.assign(arrays[f"{prefix}_{number}"])
            member_run(folder, run_config, dataset, stats[member.method], state.histories[member.index], metrics,
                            model, {"study": str(folder), "study_id": study_id, "index": member.index,
                                    "program": program["name"]})
    barrier("models saved")
    program_files.remove_program_states(folder, jax.process_index())


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


def member_run(folder: Path, config: TrainConfig, dataset, stats: dict, history: list[dict], metrics: dict,
               model, member: dict) -> None:
    """The run folder of a study member whose model is kept: the files of ``fmnist train``'s folder but
    the checkpoint, so ``evaluate`` and ``predict`` take it like any run."""
    run_dir = folder / config.name
    if os.path.lexists(run_dir):  # left half-written by this study when interrupted (kept_member checked it)
        import shutil

        shutil.rmtree(run_dir)
    create_run(config, run_dir, None, dataset, stats, "members", extra={"study_member": member})
    artifacts.write_csv(run_dir / "history.csv", history, artifacts.HISTORY_COLUMNS)
    write_results(run_dir, config, history, metrics, model)
