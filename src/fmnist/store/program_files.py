"""A study's programs on disk: ``programs/<name>/`` holds each program's progress and states.

``progress.json`` (process 0): the last checkpointed epoch, which members are alive, their histories,
seconds, and once done their test metrics. ``state-e<epoch>-p<process>.npz`` (each process): the
variables of the members on that process's devices. The epoch in the file name lets progress.json move
on only after every process wrote its state: a kill in between leaves progress.json naming an epoch
whose states are all there. Every file repeats study.json's ``study_id`` and the program's binding
(``studies.program_binding``: the study's identity, settings and data, the program's name and size):
another study's or another program's file, or one written before study.json was edited, is refused.

Both are read back field by field: progress.json's histories are epochs 1..epoch for the living members
(a member that diverged stops at its non-finite epoch), the member settings it records are the
program's, and the states hold each member once, with the arrays progress.json recorded, all finite
(a member that diverged keeps its last finite state): a damaged file is a DataError naming it, never
a member quietly turned "diverged" or a traceback.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from fmnist.errors import DataError
from fmnist.guard import limits
from fmnist.guard.safe_files import check_npz, read_json
from fmnist.runtime import barrier, is_main_process
from fmnist.store import artifacts, studies
from fmnist.store.runs import brief

TEST_KEYS = ("test_loss", "test_accuracy")
META = ("members", "study_id", "binding", "epoch")  # the arrays of a state file that are not a member's variables


def program_dir(folder: Path, name: str) -> Path:
    return studies.program_dir(folder, name)


def _identity(folder: Path, name: str) -> tuple[dict, dict, str]:
    """study.json, the program ``name`` in it, and the binding its files carry."""
    recorded = studies.read_study(folder)
    return recorded, studies.program_record(recorded, name, folder), studies.program_binding(recorded, name)


def read_progress(folder: Path, name: str) -> dict | None:
    path = program_dir(folder, name) / "progress.json"
    if not os.path.lexists(path):
        return None
    recorded, program, binding = _identity(folder, name)
    progress = read_json(path, "progress file")
    identity = recorded.get("study_id", "")
    if progress.get("study_id", "") != identity:
        raise DataError(f"{path}: belongs to another study (study id {brief(progress.get('study_id'), 40)!r}); "
                        "refusing to resume from it")
    if identity and progress.get("binding") != binding:
        raise DataError(f"{path}: was written for another program or under other settings or data than "
                        f"{Path(folder) / studies.STUDY_FILE} records now (was it edited?); refusing to resume from it")
    return _checked(progress, path, len(program["members"]), recorded["settings"]["epochs"], bool(identity))


def _checked(progress: dict, path: Path, count: int, epochs: int, bound: bool) -> dict:
    """progress.json's fields, each of its type and consistent with the others; the histories with NaN
    where JSON says null."""
    def damaged(why: str) -> DataError:
        return DataError(f"{path}: damaged progress file ({why})")

    epoch = progress.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= epochs:
        raise damaged(f"epoch {brief(epoch, 40)}: must be an integer from 1 to the study's {epochs}")
    if not isinstance(progress.get("done"), bool) or progress["done"] and epoch != epochs:
        raise damaged("done must be true or false, and true only after the last epoch")
    seconds = progress.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise damaged(f"seconds {brief(seconds, 40)}: must be a number >= 0")
    alive, histories = progress.get("alive"), progress.get("history")
    if not isinstance(alive, list) or len(alive) != count or not all(isinstance(flag, bool) for flag in alive):
        raise damaged(f"alive must be {count} values true or false, one per member")
    if not isinstance(histories, list) or len(histories) != count:
        raise damaged(f"history must hold {count} histories, one per member")
    checked = [_history(rows, path, position, alive[position], epoch) for position, rows in enumerate(histories)]
    progress = progress | {"history": checked}
    if progress["done"]:
        test = progress.get("test")
        if not isinstance(test, dict) or set(test) != set(TEST_KEYS) or not all(
                isinstance(values, list) and len(values) == count and all(_number_or_null(value) for value in values)
                for values in test.values()):
            raise damaged(f"test must hold {' and '.join(TEST_KEYS)}, a number or null per member")
        progress["test"] = {key: [math.nan if value is None else float(value) for value in values]
                            for key, values in test.items()}
    if bound:  # written since program files are bound: the members' settings and the arrays of their states
        cells, arrays = progress.get("members"), progress.get("arrays")
        if not isinstance(cells, list) or len(cells) != count or not all(isinstance(cell, list) for cell in cells):
            raise damaged(f"members must be {count} (method, learning rate, seed) triples")
        if not isinstance(arrays, dict) or not arrays or not all(
                isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], list) and isinstance(spec[1], str)
                and all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in spec[0])
                for spec in arrays.values()):
            raise damaged("arrays must name each state array's shape and type")
    return progress


def _number_or_null(value) -> bool:
    return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)


def _history(rows, path: Path, position: int, alive: bool, epoch: int) -> list[dict]:
    """A member's rows: epochs 1..epoch, all finite, while it lives; when it diverged, finite up to the
    non-finite epoch where it stopped."""
    rows = artifacts.check_history(rows, path, what=f"progress file, history of member {position}")
    finite = [all(math.isfinite(row[key]) for key in artifacts.HISTORY_COLUMNS) for row in rows]
    if alive and (len(rows) != epoch or not all(finite)):
        raise DataError(f"{path}: damaged progress file (member {position} is alive: it needs {epoch} finite epochs, "
                        f"it has {sum(finite)} of {len(rows)})")
    if not alive and (not 1 <= len(rows) <= epoch or finite[-1] or not all(finite[:-1])):
        raise DataError(f"{path}: damaged progress file (member {position} diverged: its epochs must be finite up "
                        "to the last, which is not)")
    return rows


def save_program(folder: Path, name: str, engine, epoch: int, histories: list[list[dict]], seconds: float) -> None:
    """Checkpoint a program after ``epoch``: each process its members' state, then process 0 the progress."""
    import jax

    target = program_dir(folder, name)
    target.mkdir(parents=True, exist_ok=True)
    recorded, _, binding = _identity(folder, name)
    identity = recorded.get("study_id", "")
    state = engine.local_state()
    arrays = state | {"members": np.array(engine.local_members(), np.int64), "study_id": np.array(identity),
                      "binding": np.array(binding), "epoch": np.array(epoch, np.int64)}
    process = jax.process_index()
    artifacts.write_with(target / f"state-e{epoch:04d}-p{process}.npz", lambda temporary: np.savez(temporary, **arrays))
    barrier(f"{name} state {epoch}")
    if is_main_process():
        artifacts.write_json(target / "progress.json", {
            "epoch": epoch, "alive": engine.alive.tolist(), "history": histories, "seconds": seconds, "done": False,
            "study_id": identity, "binding": binding,
            "members": [[member.method, float(member.learning_rate), int(member.seed)] for member in engine.members],
            "arrays": {key: [list(value.shape[1:]), str(value.dtype)] for key, value in state.items()}})
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
    ``process``'s); ``wanted``: only these positions (every member of the program when None)."""
    recorded, program, binding = _identity(folder, name)
    identity = recorded.get("study_id", "")
    progress = read_progress(folder, name)
    expected = (progress or {}).get("arrays") if identity else None
    count = len(program["members"])
    found: dict[int, dict] = {}
    files = sorted(program_dir(folder, name).glob(f"state-e{epoch:04d}-p{'*' if process is None else process}.npz"))
    for path in files:
        positions, arrays = _state_file(path, identity, binding, epoch, count, expected)
        if set(positions) & set(found):
            raise DataError(f"{path}: damaged checkpoint (holds members another state file of the program holds)")
        for row, position in enumerate(positions):
            if wanted is None or position in wanted:
                found[position] = {key: value[row] for key, value in arrays.items()}
    missing = sorted(set(range(count) if wanted is None else wanted) - set(found)) if process is None else []
    if missing or not files:
        raise DataError(f"{program_dir(folder, name)}: no saved state of epoch {epoch} for members {missing or 'all'}")
    return found


def _state_file(path: Path, identity: str, binding: str, epoch: int, count: int,
                expected: dict | None) -> tuple[list[int], dict]:
    """A state file's member positions and arrays, checked: this study's and program's, of ``epoch``,
    each member once, the arrays progress.json recorded, all finite."""
    stored = check_npz(path, max(count, 1) * limits.MAX_MEMBER_STATE_BYTES)  # bounded: never more than its members need
    if (str(stored["study_id"]) if "study_id" in stored else "") != identity:
        raise DataError(f"{path}: belongs to another study; refusing to resume from it")
    if identity and (str(stored.get("binding", "")) != binding or stored.get("epoch", -1) != epoch):
        raise DataError(f"{path}: belongs to another program or epoch, or was written under other settings "
                        f"or data than {studies.STUDY_FILE} records now; refusing to resume from it")
    if "members" not in stored:
        raise DataError(f"{path}: damaged checkpoint (no members)")
    positions = stored["members"]
    arrays = {key: value for key, value in stored.items() if key not in META}
    if positions.ndim != 1 or positions.dtype.kind not in "iu" or len(set(positions.tolist())) != len(positions) \
            or not all(0 <= position < count for position in positions.tolist()):
        raise DataError(f"{path}: damaged checkpoint (its members are not positions of the program's {count} members)")
    if expected is not None and set(arrays) != set(expected):
        raise DataError(f"{path}: damaged checkpoint (its arrays are not those progress.json records)")
    for key, value in arrays.items():
        shape, dtype = expected[key] if expected is not None else (list(value.shape[1:]), str(value.dtype))
        if value.shape != (len(positions), *shape) or str(value.dtype) != dtype:
            raise DataError(f"{path}: damaged checkpoint ({key} is {value.dtype}{list(value.shape)}; its members and "
                            f"progress.json make it {dtype}{[len(positions), *shape]})")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise DataError(f"{path}: damaged checkpoint ({key} holds values that are not finite; a member that "
                            "diverged keeps its last finite state)")
    return positions.tolist(), arrays


def remove_program_states(folder: Path, process: int, name: str = "*") -> None:
    """Program ``name``'s (default: every program's) states of ``process``, needed no more: the study has
    finished and kept models have their own files, or no model of the program will be kept."""
    for stale in (Path(folder) / studies.PROGRAMS).glob(f"{name}/state-e*-p{process}.npz"):
        stale.unlink(missing_ok=True)
