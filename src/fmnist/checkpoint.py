"""Per-epoch checkpoints: every model and optimizer variable, the epoch, and the history so far.

One ``checkpoint.npz`` in the run folder, written to a temporary name and moved into place, so a kill
during the write leaves the previous checkpoint whole. It carries its run's id (config.json's
``run_id``) and is refused by any other run. No other random state needs saving: the
shuffle order of epoch e is derived from ``(seed, e)``, and any Keras seed-generator state is a
non-trainable variable, saved with the rest.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from fmnist import artifacts
from fmnist.errors import DataError

FILE = "checkpoint.npz"
GROUPS = ("trainable", "non_trainable", "optimizer")


@dataclasses.dataclass
class Checkpoint:
    epoch: int
    history: list[dict]
    arrays: dict[str, list[np.ndarray]]
    run_id: str = ""


def _variables(model) -> dict[str, list]:
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return {
        "trainable": model.trainable_variables,
        "non_trainable": model.non_trainable_variables,
        "optimizer": model.optimizer.variables,
    }


def save(run_dir: Path, model, epoch: int, history: list[dict], run_id: str) -> None:
    arrays = {
        f"{group}_{index}": np.asarray(variable.value)
        for group, variables in _variables(model).items()
        for index, variable in enumerate(variables)
    }
    from fmnist.runs import binding

    arrays["meta"] = np.array(json.dumps({"epoch": epoch, "history": history, "run_id": run_id,
                                          "binding": binding(run_dir)}))
    artifacts.write_with(Path(run_dir) / FILE, lambda temporary: np.savez(temporary, **arrays))


def load(run_dir: Path, run_id: str) -> Checkpoint | None:
    """The run's checkpoint, None when there is none; DataError when it is damaged or another run's."""
    from fmnist.runs import binding

    from fmnist import limits
    from fmnist.safe_files import check_npz

    path = Path(run_dir) / FILE
    if not os.path.lexists(path):
        return None
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: damaged checkpoint (No data left in file); move it away to restart the run from "
                        "its beginning")
    check_npz(path, limits.MAX_MODEL_WEIGHTS_BYTES)  # a model's variables and its optimizer's: 3 MB for Adam
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            arrays = {}
            for group in GROUPS:  # keys are f"{group}_{index}"; "non_trainable_" does not start with "trainable_"
                count = sum(key.startswith(f"{group}_") for key in stored.files)
                arrays[group] = [stored[f"{group}_{index}"] for index in range(count)]
        epoch, history = int(meta["epoch"]), list(meta["history"])
    # an empty file is an EOFError; a member whose header claims a huge array a MemoryError
    except (OSError, ValueError, KeyError, TypeError, EOFError, MemoryError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: damaged checkpoint ({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
                        "move it away to restart the run from its beginning") from None
    if meta.get("run_id", "") != run_id:  # runs from before run ids have none on either side
        raise DataError(f"{path}: belongs to another run (run id {meta.get('run_id')!r}, this run is {run_id!r}); "
                        "refusing to resume from it")
    if "binding" in meta and meta["binding"] != binding(run_dir):
        raise DataError(f"{path}: was written under other settings or data than {Path(run_dir) / 'config.json'} "
                        "records now (was config.json edited?); refusing to resume from it")
    return Checkpoint(epoch, history, arrays, run_id)


def restore(model, saved: Checkpoint, path: Path) -> None:
    """Put the saved values into the model's and optimizer's variables, bit for bit."""
    for group, variables in _variables(model).items():
        values = saved.arrays[group]
        shapes = [tuple(v.shape) for v in variables]
        if [value.shape for value in values] != shapes:
            raise DataError(f"{path / FILE}: the checkpoint's {group} variables do not fit this model")
        for variable, value in zip(variables, values):
            variable.assign(value)


# -- the programs of a study -------------------------------------------------------------------------
# programs/<name>/progress.json (process 0): the last checkpointed epoch, which members are alive, their
# histories, seconds, and once done their test metrics. programs/<name>/state-e<epoch>-p<process>.npz
# (each process): the variables of the members on that process's devices. The epoch in the file name
# lets progress.json move on only after every process wrote its state: a kill in between leaves
# progress.json naming an epoch whose states are all there.


def program_dir(folder: Path, name: str) -> Path:
    return Path(folder) / "programs" / name


def read_progress(folder: Path, name: str) -> dict | None:
    from fmnist.safe_files import read_json

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
    from fmnist.safe_files import read_json

    return str(read_json(Path(folder) / "study.json", "study file").get("study_id", ""))


def save_program(folder: Path, name: str, engine, epoch: int, histories: list[list[dict]], seconds: float) -> None:
    """Checkpoint a program after ``epoch``: each process its members' state, then process 0 the progress."""
    import jax

    from fmnist.runtime import barrier, is_main_process

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
    from fmnist.runtime import barrier, is_main_process

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
