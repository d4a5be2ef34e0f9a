"""A study: models x optimizers x methods x learning rates x seeds, many members per compiled program.

grid -> members (in a fixed order) -> programs: the members of one model and optimizer, in pieces of at most
``members_per_program`` (grid.py) -> each program trains epoch by epoch, checkpointing after every epoch
(programs.py, engines.members) -> members.csv and history.csv -> the kept members' run folders (kept.py).
``fmnist sweep`` (sweep.py) and ``fmnist compare`` (compare.py) add their own tables and figures.

The folder (store.studies owns its layout): study.json, members.csv, history.csv, the kind's own tables
and figures, programs/<name>/ (progress and checkpoints while it trains) and one run folder per kept
model. With several processes (``jax.distributed``), each writes the state and models of the members on
its own devices; process 0 writes everything else.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from fmnist import data, normalization
from fmnist.config import SweepConfig
from fmnist.errors import Interrupted
from fmnist.reporting import tables
from fmnist.runtime import any_process, is_main_process, tell_resume
from fmnist.store import artifacts, kept_runs, runs, studies
from fmnist.training.grid import (
    StudyMember,
    describe_grid,
    grid_extension,
    members_of,
    plan_programs,
)
from fmnist.training.kept import save_models
from fmnist.training.programs import train_program
from fmnist.training.progress import Clock
from fmnist.training.resume import resumed_programs


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
    if not resume and output_dir is not None:
        runs.check_new_folder(output_dir)  # a folder in use is said before the data load, not after
    dataset = data.load(config.data_dir, verify=config.verify)
    splits = data.split(dataset, config.valid_size)  # a bad valid_size fails before any folder is made
    if resume:
        folder = Path(output_dir)
        recorded = studies.reopen_study(folder, kind, dataset)
        for member in members:  # now, not after training: a foreign run where a member's folder belongs
            kept_runs.kept_member(folder / member.name, recorded.get("study_id", ""))
        if programs != recorded["programs"]:
            studies.record_study(folder, recorded, config, programs)
        artifacts.remove_temporaries(folder)
    else:
        programs = plan_programs(config, members)
        folder = studies.create_study(config, output_dir, kind, runs_root, dataset, programs)
    tell_resume(should_stop, f"{studies.KIND_COMMANDS[kind]} --resume {folder}")  # for a second signal's message
    stats = {method: normalization.get(method).fit(splits.x_train) for method in config.methods}
    devices = jax.devices()
    log(f"{kind}: {len(members)} members ({describe_grid(config)}), {config.epochs} epoch{'s' * (config.epochs != 1)}, "
        f"{len(programs)} program{'s' * (len(programs) != 1)} on {len(devices)} {devices[0].platform} "
        f"device{'s' * (len(devices) != 1)}" + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""))
    state = StudyTables(folder, config, members, programs)
    clock = Clock(config.epochs * len(members))
    done, stop = 0, None
    while True:
        for number, program in enumerate(programs[done:], done + 1):
            train_program(program, f"[{program['name']} {number}/{len(programs)}]", config, folder, members, stats,
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
    save_models(folder, config, members, programs, state, stats, dataset)
    state.write()
    return StudyResult(folder, config, members, state.rows(), state.histories)


def _extend(folder, config, kind, programs, added, state, clock, log):
    """Add the members of the ``added`` cells as new programs, recorded in study.json before they train."""
    before = len(state.members)
    config = dataclasses.replace(config, extra_rates=config.extra_rates + added)
    members = members_of(config, kind)
    fresh = plan_programs(config, members[before:])
    fresh = [program | {"name": f"edge{len(programs) + number}-{tables.line_name(program.get('model', 'mlp'), program['optimizer'])}"}
             for number, program in enumerate(fresh, 1)]
    studies.record_study(folder, studies.read_study(folder, kind), config, programs + fresh)
    state.grow(members, fresh)
    clock.total += config.epochs * (len(members) - before)
    log(f"{kind}: best rate on the edge of the rates tried, adding " + ", ".join(
        " ".join([method, *([model] if model != "mlp" else []), optimizer, f"lr {rate:g}"])
        for model, optimizer, method, rate in added)
        + f" ({len(members) - before} members)")
    return config, members, programs + fresh


class StudyTables:
    """What the study knows so far, and members.csv / history.csv written from it (process 0).

    The tables are rewritten whole, so during a program at most every ``EVERY`` seconds: a grid of
    100,000 members otherwise spends longer writing them after each epoch than training (resuming reads
    the programs' progress files, never these tables)."""

    EVERY = 30.0

    def __init__(self, folder, config, members, programs):
        self.folder, self.config, self.members = folder, config, members
        self.written = -float("inf")
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

    def write(self, now: bool = True) -> None:
        """Rewrite the tables; ``now=False``: only when ``EVERY`` seconds have passed since the last time."""
        if not now and time.perf_counter() - self.written < self.EVERY:
            return
        self.written = time.perf_counter()
        if is_main_process():
            artifacts.write_csv(self.folder / "members.csv", self.rows(), tables.MEMBER_COLUMNS)
            artifacts.write_csv(self.folder / "history.csv", tables.history_rows(self.members, self.histories),
                                tables.HISTORY_COLUMNS)
