"""Resuming, in one rule set: a run (``fmnist train --resume``) or a study (``fmnist sweep`` /
``fmnist compare --resume``) continues with its recorded settings.

A setting named again must equal the recorded one, except ``data_dir`` (the same data, verified by
their digests, may have moved), a run's ``epochs`` (it may be raised; the checkpoint decides whether a
lower one still fits) and a study's ``seeds`` (it may grow: the new seeds' members train as new programs,
and the recorded ones keep their progress, states and run folders).
"""

from __future__ import annotations

import dataclasses
import os

from fmnist import engines
from fmnist.config import SweepConfig, TrainConfig
from fmnist.errors import UsageError
from fmnist.store.runs import RESULT_SETTINGS, read_config
from fmnist.training.grid import StudyMember, members_of, plan_programs


def check_unchanged(folder, what: str, recorded: dict, given: dict, free=("data_dir",), grows=()) -> None:
    """Refuse a setting in ``given`` that differs from ``recorded`` (``what``: "run", "sweep", …), unless it
    is ``free`` or grows (``grows``: may be raised, not lowered)."""
    for key, value in given.items():
        before = recorded.get(key)
        if key in free or value == before or key in grows and before is not None and value > before:
            continue
        more = f" (it may only add {key})" if key in grows else ""
        raise UsageError(f"resume {folder}: {key} {value!r} differs from the {what}'s {before!r}; resuming refuses "
                         f"changes that alter the result{more}", "resume")


def resume_config(run_dir: str | os.PathLike, given: dict) -> TrainConfig:
    """The settings recorded in ``run_dir``; ``given`` (the settings the user named) may raise ``epochs``
    or point ``data_dir`` elsewhere, but may not change anything in RESULT_SETTINGS."""
    import keras

    recorded = read_config(run_dir)["settings"]
    if "engine" in given:
        given = given | {"engine": engines.resolve(given["engine"], keras.backend.backend())}
    check_unchanged(run_dir, "run", recorded, {key: value for key, value in given.items() if key in RESULT_SETTINGS})
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    settings = {key: value for key, value in recorded.items() if key in fields}
    return TrainConfig(**(settings | {key: given[key] for key in ("epochs", "data_dir") if key in given}))


def recorded_study(recorded: dict) -> SweepConfig:
    """study.json's settings as a SweepConfig (a setting added since the study began takes its default)."""
    return SweepConfig(**{key: tuple(value) if isinstance(value, list) else value
                          for key, value in recorded["settings"].items()})


def resumed_study(folder, recorded: dict, given: dict) -> SweepConfig:
    """The study's recorded settings with ``given`` (named again on resume) applied: more ``seeds`` or
    another ``data_dir``; any other difference is refused."""
    before = recorded_study(recorded)
    check_unchanged(folder, recorded["kind"], dataclasses.asdict(before), given, grows=("seeds",))
    return dataclasses.replace(before, **{key: given[key] for key in ("seeds", "data_dir") if key in given})


def resumed_programs(folder, recorded: dict, config: SweepConfig, kind: str, members: list[StudyMember]) -> list[dict]:
    """The recorded programs, and when ``config`` raises ``seeds`` new programs for the new seeds' members.

    Adding seeds renumbers the members (the grid's order ends with the seed), so the recorded programs'
    member indices are mapped through each member's settings; their progress and states are positional
    within the program and stay valid."""
    before = recorded_study(recorded)
    check_unchanged(folder, kind, dataclasses.asdict(before), dataclasses.asdict(config), grows=("seeds",))
    if config.seeds == before.seeds:
        return recorded["programs"]
    key = lambda member: (member.optimizer, member.method, member.learning_rate, member.seed)
    index_of = {key(member): member.index for member in members}
    old = {member.index: index_of[key(member)] for member in members_of(before, kind)}
    programs = [program | {"members": [old[index] for index in program["members"]]} for program in recorded["programs"]]
    known = set(old.values())
    fresh = plan_programs(config, [member for member in members if member.index not in known])
    suffix = f"-seeds{before.seed + before.seeds}"  # names of their own: never one of the recorded programs'
    return programs + [program | {"name": program["name"] + suffix} for program in fresh]
