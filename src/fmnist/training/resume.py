"""Resuming a study with more seeds than it was started with (``fmnist compare`` or ``fmnist sweep --resume F --seeds N``).

Every other setting of a resumed study is the recorded one; only ``seeds`` may grow. The members of the
new seeds train as new programs; the recorded ones keep their progress, states and run folders.
"""

from __future__ import annotations

import dataclasses
import os

from fmnist import engines
from fmnist.config import SweepConfig, TrainConfig
from fmnist.errors import UsageError
from fmnist.store.runs import RESULT_SETTINGS, read_config
from fmnist.training.grid import StudyMember, members_of, plan_programs


def resumed_programs(recorded: dict, config: SweepConfig, kind: str, members: list[StudyMember]) -> list[dict]:
    """The recorded programs, and when ``config`` raises ``seeds`` new programs for the new seeds' members.

    Adding seeds renumbers the members (the grid's order ends with the seed), so the recorded programs'
    member indices are mapped through each member's settings; their progress and states are positional
    within the program and stay valid."""
    settings = {key: tuple(value) if isinstance(value, list) else value for key, value in recorded["settings"].items()}
    before = SweepConfig(**settings)
    ignored = {"seeds", "data_dir"}
    settings = dataclasses.asdict(before)  # a setting added since the study began takes its default
    changed = [key for key, value in dataclasses.asdict(config).items() if key not in ignored and settings[key] != value]
    if changed or config.seeds < before.seeds:
        what = changed[0] if changed else "seeds"
        raise UsageError(f"--resume: {what} {getattr(config, what)!r} differs from the study's {settings.get(what)!r}; "
                         "a resumed study keeps its settings (it may only add seeds)")
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


# Settings that change the numbers a run produces; resuming refuses to change them.


def resume_config(run_dir: str | os.PathLike, given: dict) -> TrainConfig:
    """The settings recorded in ``run_dir``; ``given`` (the options the user named) may raise --epochs
    or point --data-dir elsewhere, but may not change anything in RESULT_SETTINGS."""
    import keras

    recorded = read_config(run_dir)["settings"]
    for key, value in given.items():
        if key == "engine":
            value = engines.resolve(value, keras.backend.backend())
        if key in RESULT_SETTINGS and value != recorded.get(key):
            option = "--skip-checksum" if key == "verify" else f"--{key.replace('_', '-')} {value}"
            raise UsageError(f"--resume {run_dir}: {option} differs from the run's {key} {recorded.get(key)!r}; "
                             "resuming refuses changes that alter the result")
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    settings = {key: value for key, value in recorded.items() if key in fields}
    return TrainConfig(**(settings | {key: given[key] for key in ("epochs", "data_dir") if key in given}))
