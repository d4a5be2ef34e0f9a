"""Run-folder files, each written to a temporary name and moved into place; the tables read back.

An interruption therefore leaves either the previous file or the new one, never half of one. A table
(CSV) is read back bounded (its bytes, its rows, each field: csv's 128 KiB) and checked (the columns
it must have, a number wherever a number belongs), so an edited or damaged table is one ``DataError``
naming it instead of a traceback wherever its values are used. A sweep's history.csv, the largest, is
about 150 bytes per member-epoch: the caps hold 1,000,000 rows (100,000 members of 10 epochs).
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

from fmnist.errors import DataError, InputError
from fmnist.guard import limits
from fmnist.guard.safe_files import read_input, write_error
from fmnist.guard.safe_files import (
    read_json as read,  # bounded; a damaged file is a DataError naming it
)

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


def read_json(path: Path, what: str = "file") -> dict:
    """A JSON object fmnist wrote (``what`` names it in the message when it is damaged)."""
    return read(Path(path), what)


def write_csv(path: Path, rows: list[dict], columns) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(path, buffer.getvalue().encode())


def read_rows(path: Path, columns=None, text=(), blank=()) -> list[dict]:
    """A CSV table fmnist wrote, with numbers as floats (NaN where the file says nan), other fields as text.

    ``columns``: the columns it must have; each of them holds a number unless it is in ``text`` (kept as
    text) or ``blank`` (a number or an empty field). Without ``columns`` any field that reads as a number
    becomes one. ``DataError`` naming the file when it cannot be read, is too large or breaks these rules.
    """
    path = Path(path)
    try:
        content = read_input(path, limits.MAX_TABLE_BYTES).decode("utf-8", "surrogateescape")
    except InputError as problem:
        raise DataError(f"{path}: table cannot be read ({problem})") from None
    rows = []
    try:
        reader = csv.DictReader(io.StringIO(content, newline=""))
        header = reader.fieldnames or []
        missing = [name for name in columns or () if name not in header]
        if missing:
            raise DataError(f"{path}: damaged table (no column {', '.join(missing)})")
        for row in reader:
            if len(rows) == limits.MAX_TABLE_ROWS:
                raise DataError(f"{path}: more than {limits.MAX_TABLE_ROWS:,} rows; over the limit for a table")
            rows.append(_row(path, reader.line_num, row, columns, text, blank))
    except csv.Error as error:  # a field over csv's limit, a NUL byte, ...
        raise DataError(f"{path}: damaged table (line {reader.line_num + 1}: {error})") from None
    return rows


def _row(path: Path, line: int, row: dict, columns, text, blank) -> dict:
    if None in row or None in row.values():  # more fields than the header names, or fewer
        raise DataError(f"{path}: damaged table (line {line}: not as many fields as the header names)")
    if columns is None:
        return {key: _number(field, field) for key, field in row.items()}
    converted = dict(row)
    for name in columns:
        field = row[name]
        if name in text or name in blank and field == "":
            continue
        value = _number(field, None)
        if value is None:
            raise DataError(f"{path}: damaged table (line {line}: {name} {field[:40]!r} is not a number)")
        converted[name] = value
    return converted


def _number(field: str, otherwise):
    try:
        return float(field)
    except ValueError:
        return otherwise


def check_history(history, path: Path, epochs: int | None = None, what: str = "history") -> list[dict]:
    """Per-epoch rows as fmnist keeps them (a checkpoint's, history.csv's): epochs 1, 2, … in order
    (``epochs`` of them, when given), each with every column of ``HISTORY_COLUMNS`` a number (None or NaN
    where an epoch diverged). Returns the rows with ``epoch`` an int and the values floats;
    ``DataError`` naming ``path`` (and ``what`` in it) otherwise."""
    if not isinstance(history, list):
        raise DataError(f"{path}: damaged {what} (not a list of rows)")
    if epochs is not None and len(history) != epochs:
        raise DataError(f"{path}: damaged {what} ({len(history)} rows for {epochs} epoch{'s' * (epochs != 1)})")
    rows = []
    for number, row in enumerate(history, 1):
        if not isinstance(row, dict) or set(HISTORY_COLUMNS) - set(row):
            raise DataError(f"{path}: damaged {what} (epoch {number}: not a row of {', '.join(HISTORY_COLUMNS)})")
        values = {}
        for key in HISTORY_COLUMNS:
            value = row[key]
            if value is None and key != "epoch":
                value = math.nan
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DataError(f"{path}: damaged {what} (epoch {number}: {key} {str(value)[:40]!r} is not a number)")
            values[key] = float(value)
        if values["epoch"] != number:
            raise DataError(f"{path}: damaged {what} (row {number} is epoch {row['epoch']!r}; the epochs must be "
                            "1, 2, … in order)")
        rows.append(row | values | {"epoch": number})
    return rows


def read_history(path: Path) -> list[dict]:
    """history.csv: one row per epoch, ``epoch`` an integer, 1, 2, … in order."""
    return check_history(read_rows(path, HISTORY_COLUMNS), path)
