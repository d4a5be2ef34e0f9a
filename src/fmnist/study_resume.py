"""Resuming a study with more seeds than it was started with (``fmnist compare`` or ``fmnist sweep --resume F --seeds N``).

Every other setting of a resumed study is the recorded one; only ``seeds`` may grow. The members of the
new seeds train as new programs; the recorded ones keep their progress, states and run folders.
"""

from __future__ import annotations

import dataclasses

from fmnist.config import SweepConfig
from fmnist.errors import UsageError
from fmnist.grid import StudyMember, members_of, plan_programs


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
    key = lambda member: (member.optimizer, member.method, member.learning_rate, member.seed)  # noqa: E731
    index_of = {key(member): member.index for member in members}
    old = {member.index: index_of[key(member)] for member in members_of(before, kind)}
    programs = [program | {"members": [old[index] for index in program["members"]]} for program in recorded["programs"]]
    known = set(old.values())
    fresh = plan_programs(config, [member for member in members if member.index not in known])
    suffix = f"-seeds{before.seed + before.seeds}"  # names of their own: never one of the recorded programs'
    return programs + [program | {"name": program["name"] + suffix} for program in fresh]
