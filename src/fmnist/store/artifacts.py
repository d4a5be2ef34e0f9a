"""Run-folder files, each written to a temporary name and moved into place.

An interruption therefore leaves either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from fmnist.guard.safe_files import (
    read_json as read,  # bounded; a damaged file is a DataError naming it
)
from fmnist.guard.safe_files import write_error

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds")


def temporary_path(path: Path) -> Path:
    """Where ``atomic_path`` writes ``path`` first: beside it, hidden, with this process's id."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def check_writable(path: Path) -> None:
    """Create and remove ``path``'s temporary file, so that a folder in its place, a read-only folder or an
    over-long name is said (``write_error``) before the work that would write it."""
    path, temporary = Path(path), temporary_path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a folder", str(path))
        with open(temporary, "xb"):
            pass
        temporary.unlink()
    except OSError as error:
        raise write_error(path, error) from None


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success move it over ``path``."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        if temporary.is_file():  # flush the data before the rename makes it visible
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:  # read-only, full, vanished: one line naming the file (the old one stays whole)
        raise write_error(path, error) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def remove_temporaries(folder: Path) -> None:
    """Delete temporary files a killed process left behind (never a published file), in ``folder`` and
    every folder below it: a study writes into programs/<name>/, tensorboard/ and its members' folders."""
    for stale in Path(folder).rglob(".*.tmp-*"):
        if stale.is_file() or stale.is_symlink():
            stale.unlink(missing_ok=True)


def write_bytes(path: Path, payload: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(payload)


def write_with(path: Path, writer: Callable[[Path], object]) -> None:
    """Let ``writer`` (model.save, savefig, …) write to a temporary name, then publish it."""
    with atomic_path(path) as temporary:
        writer(temporary)


def _clean(value):
    # JSON has no NaN or infinity; a diverged run records them as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def write_json(path: Path, payload: dict) -> None:
    write_bytes(path, (json.dumps(_clean(payload), indent=2) + "\n").encode())


def read_json(path: Path) -> dict:
    return read(Path(path))


def write_csv(path: Path, rows: list[dict], columns) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(path, buffer.getvalue().encode())


def read_rows(path: Path) -> list[dict]:
    """A CSV table fmnist wrote, with numbers as floats (NaN where the file says nan), other fields as text."""
    def value(field: str):
        try:
            return float(field)
        except ValueError:
            return field

    with open(path, newline="") as handle:
        return [{key: value(field) for key, field in row.items()} for row in csv.DictReader(handle)]


def read_history(path: Path) -> list[dict]:
    """history.csv: one row per epoch, ``epoch`` an integer."""
    return [row | {"epoch": int(row["epoch"])} for row in read_rows(path)]
