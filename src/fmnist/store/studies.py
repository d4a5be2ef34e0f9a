"""Study folders (``fmnist sweep``, ``fmnist compare``): study.json, which records the settings, the
programs, the data and the environment, and the run folders of the members whose models are kept.

A study folder holds study.json, members.csv, history.csv, the kind's own tables and figures,
programs/ (each program's progress and states: ``store.program_files``), tensorboard/ (each member's
events), report.html and the kept members' run folders. Its random ``study_id`` is repeated by its
progress files, states and kept run folders, so another study's are refused.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from pathlib import Path

from fmnist.config import SweepConfig
from fmnist.errors import DataError, UsageError
from fmnist.runtime import barrier, environment, is_main_process
from fmnist.store import artifacts
from fmnist.store.runs import check_settings, data_record, new_folder, read_config

STUDY_FILE = "study.json"
KIND_COMMANDS = {"sweep": "fmnist sweep", "compare": "fmnist compare"}


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
    """study.json of ``folder``; UsageError when it is not a study (of ``kind``, when given)."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        raise UsageError(f"resume {folder}: not a study folder (no {STUDY_FILE})", "resume")
    recorded = artifacts.read_json(path)
    if recorded.get("kind") not in KIND_COMMANDS or not isinstance(recorded.get("settings"), dict) \
            or not isinstance(recorded.get("programs"), list) or not isinstance(recorded.get("data"), dict):
        raise DataError(f"{path}: damaged study file (no kind, settings, programs or data)")
    if kind and recorded["kind"] != kind:
        raise UsageError(f"resume {folder}: a {recorded['kind']} folder, not a {kind}; resume it with "
                         f"{KIND_COMMANDS[recorded['kind']]}", "resume")
    check_settings(recorded["settings"], SweepConfig, path)
    return recorded


def reopen_study(folder, kind: str, dataset) -> dict:
    """Check that ``dataset`` is the study's data; returns study.json."""
    import jax

    recorded = read_study(folder, kind)
    if recorded["data"].get("digests") != dataset.digests:
        raise UsageError(f"resume {folder}: the data in {dataset.source} differ from the study's "
                         f"({recorded['data']['source']}); resuming refuses other data", "resume")
    before = recorded["environment"].get("device_count"), recorded["environment"].get("process_count")
    if before != (jax.device_count(), jax.process_count()):
        print(f"fmnist: warning: the study ran on {before[0]} devices in {before[1]} processes, now "
              f"{jax.device_count()} in {jax.process_count()}; its numbers may differ in the last bits from an "
              "uninterrupted run", file=sys.stderr)
    return recorded


def record_study(folder: Path, recorded: dict, config, programs: list[dict]) -> None:
    """study.json with ``config``'s settings and ``programs`` (a resumed study given more seeds)."""

    if is_main_process():
        artifacts.write_json(Path(folder) / STUDY_FILE, recorded | {"settings": dataclasses.asdict(config),
                                                                    "programs": programs})
    barrier("study recorded")


def _member_record(run_dir: Path) -> dict | None:
    """The ``study_member`` record of a run folder's config.json; None when it has none (or no config)."""
    if not os.path.lexists(run_dir / "config.json"):
        return None
    try:
        return read_config(run_dir).get("study_member")
    except (DataError, UsageError):
        return None


def kept_member(run_dir: Path, study_id: str) -> bool:
    """Whether ``run_dir`` is this study's finished run folder of the member it is named after. A folder
    there that is not this study's (another run put where a member's folder belongs) is refused, never
    adopted nor deleted."""
    if not os.path.lexists(run_dir):
        return False
    record = _member_record(run_dir)
    ours = isinstance(record, dict) and record.get("study_id", "") == study_id \
        and read_config(run_dir)["settings"].get("name") == run_dir.name
    leftovers = {path.name for path in run_dir.iterdir()} if run_dir.is_dir() else {"?"}
    if not ours and {name for name in leftovers if ".tmp-" not in name}:  # only an empty folder is ours to redo
        raise DataError(f"{run_dir}: holds a run that is not this study's member {run_dir.name} (config.json "
                        f"records {record!r}); move it away and resume again")
    return ours and (run_dir / "metrics.json").is_file()
