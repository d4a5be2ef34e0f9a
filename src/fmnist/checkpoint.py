"""Per-epoch checkpoints: every model and optimizer variable, the epoch, and the history so far.

One ``checkpoint.npz`` in the run folder, written to a temporary name and moved into place, so a kill
during the write leaves the previous checkpoint whole. No other random state needs saving: the
shuffle order of epoch e is derived from ``(seed, e)``, and any Keras seed-generator state is a
non-trainable variable, saved with the rest.
"""

from __future__ import annotations

import dataclasses
import json
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


def _variables(model) -> dict[str, list]:
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return {
        "trainable": model.trainable_variables,
        "non_trainable": model.non_trainable_variables,
        "optimizer": model.optimizer.variables,
    }


def save(run_dir: Path, model, epoch: int, history: list[dict]) -> None:
    arrays = {
        f"{group}_{index}": np.asarray(variable.value)
        for group, variables in _variables(model).items()
        for index, variable in enumerate(variables)
    }
    arrays["meta"] = np.array(json.dumps({"epoch": epoch, "history": history}))
    artifacts.write_with(Path(run_dir) / FILE, lambda temporary: np.savez(temporary, **arrays))


def load(run_dir: Path) -> Checkpoint | None:
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            arrays = {}
            for group in GROUPS:  # keys are f"{group}_{index}"; "non_trainable_" does not start with "trainable_"
                count = sum(key.startswith(f"{group}_") for key in stored.files)
                arrays[group] = [stored[f"{group}_{index}"] for index in range(count)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise DataError(f"{path}: damaged checkpoint ({error})") from None
    return Checkpoint(int(meta["epoch"]), meta["history"], arrays)


def restore(model, saved: Checkpoint, path: Path) -> None:
    """Put the saved values into the model's and optimizer's variables, bit for bit."""
    for group, variables in _variables(model).items():
        values = saved.arrays[group]
        shapes = [tuple(v.shape) for v in variables]
        if [value.shape for value in values] != shapes:
            raise DataError(f"{path / FILE}: the checkpoint's {group} variables do not fit this model")
        for variable, value in zip(variables, values):
            variable.assign(value)
