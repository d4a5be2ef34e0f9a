"""Files from users, read one way: bounded, regular files only, and every ``OSError`` said in words.

``read_input`` is the one reader of ``predict``'s inputs (pictures, ``.npy``, IDX, gzip): it never blocks
(a FIFO is refused, not waited on), never reads past ``limits.MAX_FILE_BYTES`` whatever the file's size
claims (a sparse file, ``/dev/zero``, ``/proc``), and says why a file cannot be read ("permission
denied", "not a regular file (FIFO)") instead of raising. ``parse_npy`` and ``gunzip`` turn those bytes
into arrays only after checking the sizes their headers claim against the bytes really there and the
cap. ``read_json`` reads the JSON files fmnist wrote itself (run and study folders), naming the file
when one is damaged. ``writable`` checks an output folder before any work is spent on what goes there.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import math
import os
import stat
import tempfile
import zlib
from pathlib import Path

import numpy as np

from fmnist.errors import DataError, FmnistError, InputError, UsageError
from fmnist.guard import limits

KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
         stat.S_IFSOCK: "socket", stat.S_IFDIR: "a folder"}
REASONS = {errno.ENOENT: "no such file", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
           errno.ENOTDIR: "no such file (a part of its path is not a folder)", errno.ENAMETOOLONG: "file name too long",
           errno.ELOOP: "too many levels of symbolic links"}
FULL = (errno.ENOSPC, errno.EDQUOT)  # a disk that fills while working: the work failed (exit 1), not the usage


def reason(error: OSError) -> str:
    """An OSError as the few words a row or message needs."""
    known = REASONS.get(error.errno)
    return known or f"cannot read ({(error.strerror or str(error)).lower()})"


def kind(mode: int) -> str | None:
    """None for a regular file, else what it is ("FIFO", "character device", …)."""
    return None if stat.S_ISREG(mode) else KINDS.get(stat.S_IFMT(mode), "not a regular file")


def read_input(path: Path, cap: int = limits.MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``cap``; ``InputError`` saying why not."""
    try:
        other = kind(os.stat(path).st_mode)  # before opening: opening a device may do something
        if other:
            raise InputError(f"not a regular file ({other})")
        # O_NONBLOCK: were it swapped for a FIFO since, opening must not wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise InputError(reason(error)) from None
    with os.fdopen(descriptor, "rb", buffering=0) as handle:
        info = os.fstat(descriptor)
        other = kind(info.st_mode)
        if other:
            raise InputError(f"not a regular file ({other})")
        if info.st_size > cap:
            raise InputError(f"{info.st_size:,} bytes; larger than the limit of {cap:,} for an input file")
        chunks, size = [], 0
        try:
            while size <= cap:  # st_size may understate (/proc): read until the end or past the cap
                chunk = handle.read(min(2**20, cap + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as error:
            raise InputError(reason(error)) from None
    if size > cap:
        raise InputError(f"more than {cap:,} bytes; larger than the limit for an input file")
    return b"".join(chunks)


def gunzip(payload: bytes, cap: int = limits.MAX_ARRAY_BYTES) -> bytes:
    """A gzip stream's content, refused when damaged or when it inflates past ``cap``."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(payload)) as stream:
            raw = stream.read(cap + 1)
    except EOFError:
        raise InputError("truncated (the gzip stream ends early)") from None
    except (OSError, zlib.error) as error:  # BadGzipFile is an OSError
        raise InputError(f"not a valid gzip file ({error})") from None
    if len(raw) > cap:
        raise InputError(f"decompresses to more than {cap:,} bytes (the limit for an input)")
    return raw


def parse_npy(payload: bytes, cap: int = limits.MAX_ARRAY_BYTES) -> np.ndarray:
    """A ``.npy`` file's array, from its bytes: header checked, size checked against the bytes there and
    ``cap`` before anything is allocated, never unpickled."""
    stream = io.BytesIO(payload)
    try:
        version = np.lib.format.read_magic(stream)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
        shape, fortran, dtype = readers[version](stream)
    # NumPy parses the header with ast.literal_eval: a damaged one can raise nearly anything
    # (SyntaxError, tokenize's TokenError for an unclosed header, ValueError, MemoryError, ...).
    except Exception as error:  # noqa: BLE001
        raise InputError(f"not a readable .npy array (damaged header: {type(error).__name__})") from None
    if dtype.hasobject:
        raise InputError(".npy holds Python objects; refused (arrays are loaded with allow_pickle=False)")
    if dtype.fields or dtype.subdtype:
        raise InputError(f".npy dtype {dtype}; expected uint8, integers or floats within 0..255")
    needed = math.prod(shape) * dtype.itemsize  # Python integers: no overflow whatever the header claims
    if needed > cap:
        raise InputError(f".npy shape {shape} of {dtype} needs {needed:,} bytes; over the limit of {cap:,}")
    data = payload[stream.tell():]
    if len(data) != needed:
        raise InputError(f".npy holds {len(data):,} bytes of data, but its header's shape {shape} needs "
                          f"{needed:,} (truncated or padded)")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def check_npz(path: Path, cap: int) -> None:
    """Refuse an ``.npz`` whose members claim more than ``cap`` bytes in all, before NumPy allocates them
    (a deflated member of zeros inflates a thousandfold). ``DataError`` naming the file."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            claimed = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise DataError(f"{path}: damaged checkpoint ({str(error) or type(error).__name__})") from None
    if claimed > cap:
        raise DataError(f"{path}: its arrays claim {claimed:,} bytes; over the limit of {cap:,} for a checkpoint")


def read_json(path: Path, what: str = "file") -> dict:
    """A JSON object fmnist wrote; ``DataError`` naming ``path`` when it is unreadable or damaged."""
    try:
        payload = read_input(Path(path), limits.MAX_JSON_BYTES)
        value = json.loads(payload)
    except InputError as problem:
        raise DataError(f"{path}: {what} cannot be read ({problem})") from None
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise DataError(f"{path}: damaged {what} (not JSON: {error})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: damaged {what} (not a JSON object)")
    return value


def write_error(path, error: OSError, field: str | None = None):
    """The error to raise when ``path`` cannot be written: a full disk is work that failed (exit 1),
    anything else (read-only, permission, no such folder) bad usage (exit 2)."""
    text = f"{path}: cannot write ({(error.strerror or str(error)).lower()})"
    return FmnistError(text, field) if error.errno in FULL else UsageError(text, field)


def writable(folder: Path, option: str, hint: str = "") -> None:
    """Refuse, before any work, an output folder where no file can be created."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fmnist-probe-"):
            pass
    except OSError as error:
        where = f"{option} {folder}" if option else str(folder)
        raise UsageError(f"{where}: cannot write there ({(error.strerror or str(error)).lower()}){hint}") from None
