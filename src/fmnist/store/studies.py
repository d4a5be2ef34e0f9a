"""Study folders (``fmnist sweep``, ``fmnist compare``): study.json, which records the settings, the
programs, the data and the environment, and the run folders of the members whose models are kept.

A study folder holds study.json, members.csv, history.csv, the kind's own tables and figures,
programs/ (each program's progress and states: ``store.program_files``), tensorboard/ (each member's
events), report.html and the kept members' run folders. Its random ``study_id`` is repeated by its
progress files, states and kept run folders, so another study's are refused.

study.json is read field by field (``read_study``): a program name is a plain name (it becomes a folder
under programs/), names are unique, and the programs hold each member of the grid exactly once. Its
program files carry the digest of the study's identity, the settings that decide their numbers and
the data (``program_binding``), and a kept member's folder the digest of its own config.json
(``runs.member_binding``): an edited study.json or config.json makes them refused, never continued.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
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
    member_binding,
    new_folder,
    read_config,
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


def _member_config(run_dir: Path) -> dict | None:
    """A run folder's config.json; None when it has none or it is damaged."""
    if not os.path.lexists(run_dir / "config.json"):
        return None
    try:
        return read_config(run_dir)
    except (DataError, UsageError):
        return None


def kept_member(run_dir: Path, study_id: str) -> bool:
    """Whether ``run_dir`` is this study's finished run folder of the member it is named after. A folder
    there that is not this study's (another run put where a member's folder belongs) is refused, never
    adopted nor deleted; so is one of this study's that changed since it was written (config.json edited,
    model.keras gone): its numbers would no longer be the study's."""
    run_dir = Path(run_dir)
    if not os.path.lexists(run_dir):
        return False
    recorded = _member_config(run_dir)
    record = recorded.get("study_member") if recorded else None
    ours = isinstance(record, dict) and record.get("study_id", "") == study_id \
        and recorded["settings"].get("name") == run_dir.name
    leftovers = {path.name for path in run_dir.iterdir()} if run_dir.is_dir() and not run_dir.is_symlink() else {"?"}
    if not ours and {name for name in leftovers if ".tmp-" not in name}:  # only an empty folder is ours to redo
        raise DataError(f"{run_dir}: holds a run that is not this study's member {run_dir.name} (config.json "
                        f"records {brief(record, 120)}); move it away and resume again")
    if not ours or not (run_dir / "metrics.json").is_file():
        return False  # empty, or left half-written by this study when interrupted: written again
    _check_kept(run_dir, recorded, record, study_id)
    return True


def _check_kept(run_dir: Path, recorded: dict, record: dict, study_id: str) -> None:
    """Refuse a finished member folder of this study that is no longer what the study wrote."""
    shared = (tuple(recorded["settings"].get(key) for key in KEPT_SETTINGS),
              json.dumps(recorded["data"].get("digests"), sort_keys=True))
    if study_id and (record.get("binding") != member_binding(recorded)
                     or shared != _shared(run_dir.parent / STUDY_FILE)):
        raise DataError(f"{run_dir / 'config.json'}: no longer what this study wrote for its member {run_dir.name} "
                        f"(edited since?); refusing to adopt it: {_redo(run_dir, record)}")
    metrics = artifacts.read_json(run_dir / "metrics.json", "metrics file")
    if not isinstance(metrics.get("diverged"), bool):
        raise DataError(f"{run_dir / 'metrics.json'}: damaged metrics file (no diverged: true or false)")
    model = run_dir / "model.keras"
    if not metrics["diverged"] and not (model.is_file() and not model.is_symlink()):
        raise DataError(f"{model}: missing or not a file, though metrics.json says the member finished; refusing "
                        f"to adopt the folder: {_redo(run_dir, record)}")


KEPT_SETTINGS = ("epochs", "batch_size", "valid_size")  # a member's run folder repeats these of study.json


def _shared(path: Path) -> tuple:
    """What every kept member's config.json repeats of study.json: KEPT_SETTINGS and the data's digests
    (read once per version of study.json: a study that keeps every model checks each of them)."""
    info = os.stat(path)
    return _shared_of(str(path), info.st_ino, info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=4)
def _shared_of(path: str, inode: int, modified: int, size: int) -> tuple:
    study = read_study(Path(path).parent)
    return (tuple(study["settings"].get(key) for key in KEPT_SETTINGS),
            json.dumps(study["data"].get("digests"), sort_keys=True))


def _redo(run_dir: Path, record: dict) -> str:
    """How to get a member's folder written again: from its program's state while that is kept, else by
    training its program again (a study removes the states once its models are written)."""
    program = record.get("program")
    if not isinstance(program, str) or not PLAIN_NAME.fullmatch(program):
        return "move the folder away and resume again"
    where = program_dir(run_dir.parent, program)
    if any(where.glob("state-e*.npz")):
        return "move the folder away and resume again (its model is rebuilt from its program's state)"
    return (f"move the folder away and remove {where} to train its program again (the program's state was removed "
            "when the study finished)")


TABLE_OF_BEST = {"sweep": "best.csv", "compare": "summary.csv"}  # each method's row, with its kept run folder


def best_model(folder) -> tuple[Path, str]:
    """The run folder of a study's best model and a line saying which it is: among the rows of best.csv
    (a sweep: each method x optimizer at its best rate) or summary.csv (a comparison) whose model was kept,
    the highest mean validation accuracy (chosen on validation, as the study chooses rates)."""
    folder = Path(folder)
    kind = read_study(folder)["kind"]
    table = folder / TABLE_OF_BEST[kind]
    if not table.is_file():
        raise DataError(f"{folder}: a {kind} folder without {table.name} (unfinished?); no best model to use")
    rows = [row for row in artifacts.read_rows(table, ("method", "val_accuracy_mean", "run_dir"), text=("method", "run_dir"),
                                             blank=("val_accuracy_mean",))
            if isinstance(row["run_dir"], str) and row["run_dir"] and isinstance(row["val_accuracy_mean"], float)
            and (folder / row["run_dir"] / "model.keras").is_file()]
    rows = [row for row in rows if Path(row["run_dir"]).name == row["run_dir"]]  # a name inside the study only
    if not rows:
        raise DataError(f"{folder}: no kept model in its {table.name} (it kept none: save_models was none)")
    best = max(rows, key=lambda row: row["val_accuracy_mean"])
    try:
        rate = f"lr {float(best.get('learning_rate')):g}"
    except (TypeError, ValueError):  # a comparison's summary has no rate column
        rate = None
    what = ", ".join(str(part) for part in (best["method"], best.get("optimizer"), rate) if part)
    return folder / best["run_dir"], (f"{folder} is a {kind}: using its best model, {best['run_dir']} ({what}; mean "
                                      f"val_accuracy {best['val_accuracy_mean']:.4f})")
