"""The run folders of a study's kept members (store/studies.py holds study.json): checked before a
resumed study adopts one, and the best of them for ``fmnist evaluate`` and ``fmnist predict``.

A kept member's folder carries the study's ``study_id`` and the digest of its own config.json
(``runs.member_binding``), and repeats some of study.json's settings and its data's digests
(``KEPT_SETTINGS``): one that is another study's, or was edited since the study wrote it, is refused,
never adopted nor deleted.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from fmnist.errors import DataError, UsageError
from fmnist.store import artifacts
from fmnist.store.runs import brief, member_binding, read_config
from fmnist.store.studies import PLAIN_NAME, STUDY_FILE, program_dir, read_study

KEPT_SETTINGS = ("epochs", "batch_size", "valid_size")  # a member's run folder repeats these of study.json
TABLE_OF_BEST = {"sweep": "best.csv", "compare": "summary.csv"}  # each method's row, with its kept run folder


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
