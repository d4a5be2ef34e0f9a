"""Per-epoch checkpoints: every model and optimizer variable, the epoch, and the history so far.

One ``checkpoint.npz`` in the run folder, written to a temporary name and moved into place, so a kill
during the write leaves the previous checkpoint whole. It carries its run's id (config.json's
``run_id``) and is refused by any other run. No other random state needs saving: the
shuffle order of epoch e is derived from ``(seed, e)``, and any Keras seed-generator state is a
non-trainable variable, saved with the rest. It is read back by ``guard.safe_files.check_npz``, not
``np.load``: every member inflated 1 MiB at a time and never past its declared size, every array's header
checked against the bytes there before anything is allocated (``np.load`` allocated the 1 GiB a
128-byte header claimed before finding the data missing).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from fmnist.errors import DataError
from fmnist.guard import limits
from fmnist.guard.safe_files import check_npz
from fmnist.store import artifacts
from fmnist.store.runs import binding

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

    arrays["meta"] = np.array(json.dumps({"epoch": epoch, "history": history, "run_id": run_id,
                                          "binding": binding(run_dir)}))
    artifacts.write_with(Path(run_dir) / FILE, lambda temporary: np.savez(temporary, **arrays))


def load(run_dir: Path, run_id: str) -> Checkpoint | None:
    """The run's checkpoint, None when there is none; DataError when it is damaged or another run's."""
    path = Path(run_dir) / FILE
    if not os.path.lexists(path):
        return None
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: damaged checkpoint (No data left in file); move it away to restart the run from "
                        "its beginning")
    # Read through guard.safe_files' bounded zip reader, not np.load: each member inflated 1 MiB at a time and
    # never past its declared size, each array's header checked against its bytes before anything is allocated.
    stored = check_npz(path, limits.MAX_MODEL_WEIGHTS_BYTES)  # a model's variables and its optimizer's: 3 MB for Adam
    try:
        meta = json.loads(str(stored["meta"]))
        arrays = {}
        for group in GROUPS:  # keys are f"{group}_{index}"; "non_trainable_" does not start with "trainable_"
            count = sum(key.startswith(f"{group}_") for key in stored)
            arrays[group] = [stored[f"{group}_{index}"] for index in range(count)]
        epoch, history = int(meta["epoch"]), meta["history"]
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: damaged checkpoint ({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
                        "move it away to restart the run from its beginning") from None
    if meta.get("run_id", "") != run_id:  # runs from before run ids have none on either side
        raise DataError(f"{path}: belongs to another run (run id {meta.get('run_id')!r}, this run is {run_id!r}); "
                        "refusing to resume from it")
    if "binding" in meta and meta["binding"] != binding(run_dir):
        raise DataError(f"{path}: was written under other settings or data than {Path(run_dir) / 'config.json'} "
                        "records now (was config.json edited?); refusing to resume from it")
    # epochs 1..epoch in order, each a row of numbers: a history repeated or cut is refused, not continued
    return Checkpoint(epoch, artifacts.check_history(history, path, epoch), arrays, run_id)


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


