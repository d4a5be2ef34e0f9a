"""Study folders (``fmnist sweep``, ``fmnist compare``): study.json, which records the settings, the
programs, the data and the environment. The run folders of the members whose models are kept are
checked in ``store.kept_runs``.

A study folder holds study.json, members.csv, history.csv, the kind's own tables and figures,
programs/ (each program's progress and states: ``store.program_files``), tensorboard/ (each member's
events), report.html and the kept members' run folders. Its random ``study_id`` is repeated by its
progress files, states and kept run folders, so another study's are refused.

study.json is read field by field (``read_study``): a program name is a plain name (it becomes a folder
under programs/), names are unique, and the programs hold each member of the grid exactly once. Its
program files carry the digest of the study's identity, the settings that decide their numbers and
the data (``program_binding``), and a kept member's folder the digest of its own config.json
(``runs.member_binding``, checked by ``kept_runs``): an edited study.json or config.json makes them
refused, never continued.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import uuid
from pathlib import Path

from fmnist.config import SweepConfig
from fmnist.errors import DataError, UsageError
from fmnist.runtime import barrier, environment, is_main_process
from fmnist.store import artifacts
from fmnist.store.runs import (
    brief,
    check_record,
    check_settings,
    data_record,
    new_folder,
)

STUDY_FILE = "study.json"
PROGRAMS = "programs"  # the folder of the programs' files
KIND_COMMANDS = {"sweep": "fmnist sweep", "compare": "fmnist compare"}
# The settings that decide a program's numbers and never change while a study lives (seeds, models and
# extra_rates grow: the members they add are new programs, and a program's binding names its model; data_dir may move; the rest chooses what is
# reported or kept, not what a member learns).
IDENTITY_SETTINGS = ("methods", "learning_rates", "optimizers", "seed", "epochs", "batch_size", "valid_size", "verify")
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # "sgd", "adam-2", "edge3-sgd", "sgd-seeds5"


def create_study(config, output_dir, kind: str, runs_root, dataset, programs: list[dict]) -> Path:
    """A new study folder with study.json: the settings, the programs (recorded, so that a resumed study
    runs exactly the same ones), the data and the environment. Process 0 creates it; the others wait
    and use the same ``output_dir``, which several processes must therefore name."""
    import jax


    if jax.process_count() > 1 and output_dir is None:
        raise UsageError("output_dir: name the study folder when several processes share a study", "output_dir")
    if is_main_process():
        folder = new_folder(output_dir, kind, runs_root)
        # study_id: progress files, states and kept run folders carry it, so another study's are refused
        artifacts.write_json(folder / STUDY_FILE, {
            "kind": kind, "study_id": uuid.uuid4().hex, "settings": dataclasses.asdict(config), "programs": programs,
            "data": data_record(dataset), "environment": environment(), "command": sys.argv,
        })
    barrier("study folder created")
    return Path(output_dir) if not is_main_process() else folder


def read_study(folder, kind: str | None = None) -> dict:
    """study.json of ``folder``, checked field by field (a setting added since the study began takes its
    default); UsageError when it is not a study (of ``kind``, when given), DataError when it is damaged."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        raise UsageError(f"resume {folder}: not a study folder (no {STUDY_FILE})", "resume")
    recorded = artifacts.read_json(path, "study file")
    if recorded.get("kind") not in KIND_COMMANDS or not isinstance(recorded.get("settings"), dict) \
            or not isinstance(recorded.get("programs"), list) or not isinstance(recorded.get("data"), dict):
        raise DataError(f"{path}: damaged study file (no kind, settings, programs or data)")
    if kind and recorded["kind"] != kind:
        raise UsageError(f"resume {folder}: a {recorded['kind']} folder, not a {kind}; resume it with "
                         f"{KIND_COMMANDS[recorded['kind']]}", "resume")
    check_record(recorded, path, {"study_id": str, "environment": dict})
    recorded["settings"] = _settings(recorded["settings"], path)
    config = SweepConfig(**{key: tuple(value) if isinstance(value, list) else value
                            for key, value in recorded["settings"].items()})
    if recorded["kind"] == "compare" and (len(config.learning_rates) != 1 or len(config.optimizers) != 1
                                          or config.extra_rates or config.save_models != "all"):
        raise DataError(f"{path}: damaged settings (a comparison has one learning rate and one optimizer, no "
                        "rates beyond them, and keeps every model)")
    _check_programs(recorded["programs"], config, path)
    recorded.setdefault("environment", {})
    return recorded


def _settings(settings: dict, path: Path) -> dict:
    fields = {field.name: field.default for field in dataclasses.fields(SweepConfig)}
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise DataError(f"{path}: damaged settings (unknown setting {brief(unknown[0], 60)!r})")
    check_settings(settings, SweepConfig, path)
    defaults = {key: list(value) if isinstance(value, tuple) else value for key, value in fields.items()}
    return defaults | settings


def _check_programs(programs: list, config: SweepConfig, path: Path) -> None:
    """Each program a plain, unique name, an optimizer of the study and members that are indices of the
    grid; together they hold every member exactly once."""
    names, seen = set(), set()
    for number, program in enumerate(programs, 1):
        if not isinstance(program, dict) or set(program) - {"model"} != {"name", "optimizer", "members"}:
            raise DataError(f"{path}: damaged program {number} (not a name, an optimizer and members)")
        name, members = program["name"], program["members"]
        if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
            raise DataError(f"{path}: damaged program {number} (name {brief(name, 60)!r} is not a plain name: "
                            "letters, digits, '.', '_' and '-', at most 100)")
        if name in names:
            raise DataError(f"{path}: damaged program {number} (the name {name} is used twice)")
        names.add(name)
        if program["optimizer"] not in config.optimizers:
            raise DataError(f"{path}: damaged program {name} (optimizer {brief(program['optimizer'], 60)!r} is not "
                            "one of the study's)")
        if program.get("model", "mlp") not in config.models or program.get("model") == "mlp":
            raise DataError(f"{path}: damaged program {name} (model {brief(program.get('model', 'mlp'), 60)!r} is not another "
                            "of the study's models than the mlp)")
        if not isinstance(members, list) or not members or not all(
                isinstance(index, int) and not isinstance(index, bool) and 0 <= index < config.member_count
                for index in members):
            raise DataError(f"{path}: damaged program {name} (members must be indices of the study's "
                            f"{config.member_count} members)")
        repeated = seen.intersection(members) or len(set(members)) != len(members)
        if repeated:
            raise DataError(f"{path}: damaged program {name} (a member is in it twice or in another program too)")
        seen.update(members)
    if len(seen) != config.member_count:
        raise DataError(f"{path}: damaged study file (its programs hold {len(seen)} of the study's "
                        f"{config.member_count} members)")


def study_binding(recorded: dict) -> str:
    """The digest of study.json's identity: its study id, the settings that decide its members' numbers
    (IDENTITY_SETTINGS) and the data."""
    settings = {key: recorded["settings"].get(key) for key in IDENTITY_SETTINGS}
    text = json.dumps([recorded.get("study_id", ""), settings, recorded["data"].get("digests")], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def program_binding(recorded: dict, name: str) -> str:
    """What the files of program ``name`` must have been written under: the study's identity and the
    program's name, optimizer and size. Another program's file, or one written before study.json was
    edited, does not match."""
    program = program_record(recorded, name)
    line = [program["optimizer"]] + ([program["model"]] if "model" in program else [])
    text = json.dumps([study_binding(recorded), name, *line, len(program["members"])])
    return hashlib.sha256(text.encode()).hexdigest()


def program_record(recorded: dict, name: str, folder: Path | None = None) -> dict:
    """Program ``name`` of study.json; DataError when it has none of that name (a folder under
    programs/ that is no program of the study)."""
    for program in recorded["programs"]:
        if program["name"] == name:
            return program
    raise DataError(f"{program_dir(folder or '', name)}: {STUDY_FILE} has no program {name}")


def program_dir(folder: Path, name: str) -> Path:
    return Path(folder) / PROGRAMS / name


def reopen_study(folder, kind: str, dataset) -> dict:
    """Check that ``dataset`` is the study's data; returns study.json."""
    import jax

    recorded = read_study(folder, kind)
    if recorded["data"].get("digests") != dataset.digests:
        raise UsageError(f"resume {folder}: the data in {dataset.source} differ from the study's "
                         f"({recorded['data'].get('source')}); resuming refuses other data", "resume")
    before = recorded["environment"].get("device_count"), recorded["environment"].get("process_count")
    if before != (jax.device_count(), jax.process_count()):
        print(f"fmnist: warning: the study ran on {brief(before[0], 20)} devices in {brief(before[1], 20)} processes, "
              f"now {jax.device_count()} in {jax.process_count()}; its numbers may differ in the last bits from an "
              "uninterrupted run", file=sys.stderr)
    return recorded


def record_study(folder: Path, recorded: dict, config, programs: list[dict]) -> None:
    """study.json with ``config``'s settings and ``programs`` (a resumed study given more seeds)."""

    if is_main_process():
        artifacts.write_json(Path(folder) / STUDY_FILE, recorded | {"settings": dataclasses.asdict(config),
                                                                    "programs": programs})
    barrier("study recorded")
