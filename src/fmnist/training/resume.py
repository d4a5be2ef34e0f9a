"""Resuming, in one rule set: a run (``fmnist train --resume``) or a study (``fmnist sweep`` /
``fmnist compare --resume``) continues with its recorded settings.

A setting named again must equal the recorded one, except ``data_dir`` (the same data, verified by
their digests, may have moved), a run's ``epochs`` (it may be raised; the checkpoint decides whether a
lower one still fits) and a study's ``seeds`` and ``models`` (they may grow, models after the recorded
ones: the new members train as new programs, and the recorded ones keep their progress, states and run
folders).

Before a study resumes, every file it would continue from is checked (``check_programs``): study.json's
programs against the grid (each member in the program of its optimizer), each progress.json against the
members of its program, and the states it names: a damaged or edited file is refused before anything is
trained or written.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from fmnist import engines
from fmnist.config import SweepConfig, TrainConfig
from fmnist.errors import DataError, UsageError
from fmnist.store import artifacts, program_files, studies
from fmnist.store.runs import LATER_SETTINGS, RESULT_SETTINGS, read_config
from fmnist.training.grid import StudyMember, members_of, plan_programs


def check_unchanged(folder, what: str, recorded: dict, given: dict, free=("data_dir",), grows=()) -> None:
    """Refuse a setting in ``given`` that differs from ``recorded`` (``what``: "run", "sweep", …), unless it
    is ``free`` or grows (``grows``: a number may be raised, not lowered; a list may be added to, at its end)."""
    for key, value in given.items():
        before = recorded.get(key)
        if key in free or value == before or key in grows and before is not None and _grows(value, before):
            continue
        more = f" (it may only add {key})" if key in grows else ""
        raise UsageError(f"resume {folder}: {key} {value!r} differs from the {what}'s {before!r}; resuming refuses "
                         f"changes that alter the result{more}", "resume")


def _grows(value, before) -> bool:
    if isinstance(before, (tuple, list)):
        return len(value) > len(before) and tuple(value[: len(before)]) == tuple(before)
    return value > before


def resume_config(run_dir: str | os.PathLike, given: dict) -> TrainConfig:
    """The settings recorded in ``run_dir``; ``given`` (the settings the user named) may raise ``epochs``
    or point ``data_dir`` elsewhere, but may not change anything in RESULT_SETTINGS."""
    import keras

    recorded = read_config(run_dir)["settings"]
    if "engine" in given:
        given = given | {"engine": engines.resolve(given["engine"], keras.backend.backend())}
    # a setting added since the run was written was its default then (a run before --model trained the mlp)
    check_unchanged(run_dir, "run", LATER_SETTINGS | recorded,
                    {key: value for key, value in given.items() if key in RESULT_SETTINGS})
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    settings = {key: value for key, value in recorded.items() if key in fields}
    return TrainConfig(**(settings | {key: given[key] for key in ("epochs", "data_dir") if key in given}))


def recorded_study(recorded: dict) -> SweepConfig:
    """study.json's settings as a SweepConfig (a setting added since the study began takes its default)."""
    return SweepConfig(**{key: tuple(value) if isinstance(value, list) else value
                          for key, value in recorded["settings"].items()})


def resumed_study(folder, recorded: dict, given: dict) -> SweepConfig:
    """The study's recorded settings with ``given`` (named again on resume) applied: more ``seeds`` or
    another ``data_dir``; more ``models`` (after the recorded ones); any other difference is refused."""
    before = recorded_study(recorded)
    check_unchanged(folder, recorded["kind"], dataclasses.asdict(before), given, grows=GROWS)
    return dataclasses.replace(before, **{key: given[key] for key in ("seeds", "models", "data_dir") if key in given})


GROWS = ("seeds", "models")  # what a study's resume may add to


def resumed_programs(folder, recorded: dict, config: SweepConfig, kind: str, members: list[StudyMember]) -> list[dict]:
    """The recorded programs, and when ``config`` adds ``seeds`` or ``models`` new programs for the new
    members.

    Adding seeds or models renumbers the members (the grid's order ends with the seed; a model's cells
    come before the cells added beyond the grid's edges), so the recorded programs' member indices are
    mapped through each member's settings; their progress and states are positional within the program
    and stay valid."""
    before = recorded_study(recorded)
    check_unchanged(folder, kind, dataclasses.asdict(before), dataclasses.asdict(config), grows=GROWS)
    check_programs(folder, recorded, members_of(before, kind))
    if (config.seeds, config.models) == (before.seeds, before.models):
        return recorded["programs"]
    key = lambda member: (member.model, member.optimizer, member.method, member.learning_rate, member.seed)
    index_of = {key(member): member.index for member in members}
    old = {member.index: index_of[key(member)] for member in members_of(before, kind)}
    programs = [program | {"members": [old[index] for index in program["members"]]} for program in recorded["programs"]]
    known = set(old.values())
    fresh = plan_programs(config, [member for member in members if member.index not in known])
    # names of their own: never one of the recorded programs' (a new model's programs are named for it)
    suffix = f"-seeds{before.seed + before.seeds}" if config.seeds != before.seeds else ""
    return programs + [program | {"name": program["name"] + suffix} for program in fresh]


def check_programs(folder, recorded: dict, grid: list[StudyMember]) -> None:
    """Refuse a study whose recorded programs or program files cannot be continued: a program holding a
    member of another optimizer (study.json edited), a progress file recording other members than its
    program's, or states of its last epoch that are missing, damaged or not finite. ``grid``: the members
    of study.json's settings (studies.read_study checked that the programs hold each of them once)."""
    for program in recorded["programs"]:
        name, cells = program["name"], [grid[index] for index in program["members"]]
        line = (program.get("model", "mlp"), program["optimizer"])
        stray = next((member.name for member in cells if (member.model, member.optimizer) != line), None)
        if stray:
            raise DataError(f"{Path(folder) / studies.STUDY_FILE}: damaged program {name} (it holds {stray}, a "
                            f"member of another model or optimizer than its {' '.join(line)})")
        progress = program_files.read_progress(folder, name)
        if progress is None:
            continue
        wanted = [[member.method, member.learning_rate, member.seed] for member in cells]
        if "members" in progress and progress["members"] != wanted:
            raise DataError(f"{program_files.program_dir(folder, name) / 'progress.json'}: records other members "
                            f"than the program {name} of {studies.STUDY_FILE}; refusing to resume from it")
        if not progress["done"]:  # it continues from every member's state
            program_files.read_program_state(folder, name, progress["epoch"])
            continue
        # A finished program's states are read again for its kept models, each process's own (the study
        # removes them when its models are written: a kill in between may leave some processes' only).
        for path in program_files.program_dir(folder, name).glob(f"state-e{progress['epoch']:04d}-p*.npz"):
            process = path.stem.rpartition("-p")[2]
            if process.isdigit():
                program_files.read_program_state(folder, name, progress["epoch"], process=int(process))
    _check_kept_folders(folder, recorded, grid)


def _check_kept_folders(folder, recorded: dict, grid: list[StudyMember]) -> None:
    """A study that wrote its kept models (members.csv names their folders) removed its programs' states:
    a kept folder gone or half-written since cannot be written again from them. Refused now, with what to
    do, rather than after the other programs ran."""
    table = Path(folder) / "members.csv"
    if not table.is_file():
        return
    program_of = {grid[index].name: program["name"] for program in recorded["programs"] for index in program["members"]}
    for row in artifacts.read_rows(table, ("member", "run_dir"), text=("member", "run_dir")):
        name = row["member"]
        if not row["run_dir"] or name not in program_of or (Path(folder) / name / "metrics.json").is_file():
            continue
        where = program_files.program_dir(folder, program_of[name])
        if (where / "progress.json").is_file() and not any(where.glob("state-e*.npz")):  # removed: trains again
            raise DataError(f"{Path(folder) / name}: the kept member {name} is gone or half-written, and its program's "
                            f"state was removed when the study finished; remove {where} to train its program again")
