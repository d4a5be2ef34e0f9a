"""A study's programs on disk: ``programs/<name>/`` holds each program's progress and states.

``progress.json`` (process 0): the last checkpointed epoch, which members are alive, their histories,
seconds, and once done their test metrics. ``state-e<epoch>-p<process>.npz`` (each process): the
variables of the members on that process's devices. The epoch in the file name lets progress.json move
on only after every process wrote its state: a kill in between leaves progress.json naming an epoch
whose states are all there. Every file repeats study.json's ``study_id``; another study's is refused.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from fmnist.errors import DataError
from fmnist.guard.safe_files import read_json
from fmnist.runtime import barrier, is_main_process
from fmnist.store import artifacts


def program_dir(folder: Path, name: str) -> Path:
    return Path(folder) / "programs" / name


def read_progress(folder: Path, name: str) -> dict | None:
    path = program_dir(folder, name) / "progress.json"
    if not os.path.lexists(path):
        return None
    progress = read_json(path, "progress file")
    if not isinstance(progress.get("history"), list) or "epoch" not in progress:
        raise DataError(f"{path}: damaged progress file (no epoch or history)")
    if progress.get("study_id", "") != study_id(folder):
        raise DataError(f"{path}: belongs to another study (study id {progress.get('study_id')!r}); refusing to "
                        "resume from it")
    # JSON has no NaN: a diverged member's values were written as null
    progress["history"] = [[{key: math.nan if value is None else value for key, value in row.items()} for row in rows]
                           for rows in progress["history"]]
    if progress.get("test"):
        progress["test"] = {key: [math.nan if value is None else value for value in values]
                            for key, values in progress["test"].items()}
    return progress


def study_id(folder: Path) -> str:
    """study.json's id, which the program files repeat ("" for studies from before ids)."""
    return str(read_json(Path(folder) / "study.json", "study file").get("study_id", ""))


def save_program(folder: Path, name: str, engine, epoch: int, histories: list[list[dict]], seconds: float) -> None:
    """Checkpoint a program after ``epoch``: each process its members' state, then process 0 the progress."""
    import jax

    target = program_dir(folder, name)
    target.mkdir(parents=True, exist_ok=True)
    identity = study_id(folder)
    arrays = engine.local_state() | {"members": np.array(engine.local_members(), np.int64),
                                     "study_id": np.array(identity)}
    process = jax.process_index()
    artifacts.write_with(target / f"state-e{epoch:04d}-p{process}.npz", lambda temporary: np.savez(temporary, **arrays))
    barrier(f"{name} state {epoch}")
    if is_main_process():
        artifacts.write_json(target / "progress.json", {"epoch": epoch, "alive": engine.alive.tolist(),
                                                        "history": histories, "seconds": seconds, "done": False,
                                                        "study_id": identity})
    barrier(f"{name} progress {epoch}")
    for stale in target.glob(f"state-e*-p{process}.npz"):
        if int(stale.name.split("-")[1][1:]) < epoch:
            stale.unlink(missing_ok=True)


def finish_program(folder: Path, name: str, histories, alive, seconds: float, test: dict) -> None:
    if is_main_process():
        progress = read_progress(folder, name)
        artifacts.write_json(program_dir(folder, name) / "progress.json", progress | {
            "history": histories, "alive": np.asarray(alive).tolist(), "seconds": seconds, "done": True, "test": test})
    barrier(f"{name} done")


def read_program_state(folder: Path, name: str, epoch: int, wanted: list[int] | None = None,
                       process: int | None = None) -> dict[int, dict]:
    """Member position -> its named arrays, from the state files of ``epoch`` (every process's, or only
    ``process``'s); ``wanted``: only these positions."""
    found: dict[int, dict] = {}
    identity = study_id(folder)
    files = sorted(program_dir(folder, name).glob(f"state-e{epoch:04d}-p{'*' if process is None else process}.npz"))
    for path in files:
        try:
            with np.load(path, allow_pickle=False) as stored:
                if (str(stored["study_id"]) if "study_id" in stored.files else "") != identity:
                    raise DataError(f"{path}: belongs to another study; refusing to resume from it")
                positions = stored["members"].tolist()
                keep = [row for row, position in enumerate(positions) if wanted is None or position in wanted]
                if not keep:
                    continue
                arrays = {key: stored[key] for key in stored.files if key not in ("members", "study_id")}
        except (OSError, ValueError, KeyError, EOFError, MemoryError, zipfile.BadZipFile) as error:
            raise DataError(f"{path}: damaged checkpoint ({error})") from None
        for row in keep:
            found[positions[row]] = {key: value[row] for key, value in arrays.items()}
    missing = sorted(set(wanted or []) - set(found)) if process is None else []
    if missing or not files:
        raise DataError(f"{program_dir(folder, name)}: no saved state of epoch {epoch} for members {missing or 'all'}")
    return found


def remove_program_states(folder: Path, process: int) -> None:
    """The finished study needs its program states no more (kept models have their own files)."""
    for stale in (Path(folder) / "programs").glob(f"*/state-e*-p{process}.npz"):
        stale.unlink(missing_ok=True)
