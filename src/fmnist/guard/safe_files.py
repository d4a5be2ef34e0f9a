"""Files from users, read one way: bounded, regular files only, and every ``OSError`` said in words.

``read_input`` is the one reader of ``predict``'s inputs (pictures, ``.npy``, IDX, gzip): it never blocks
(a FIFO is refused, not waited on), never reads past ``limits.MAX_FILE_BYTES`` whatever the file's size
claims (a sparse file, ``/dev/zero``, ``/proc``), and says why a file cannot be read ("permission
denied", "not a regular file (FIFO)") instead of raising. ``parse_npy`` and ``gunzip`` turn those bytes
into arrays only after checking the sizes their headers claim against the bytes really there and the
cap. ``open_zip`` and ``zip_member`` read zip files (``.keras`` archives, checkpoints) by the same rule:
the directory's size checked before ``zipfile`` parses it, each member inflated in bounded steps and never
past its declared size (``check_npz`` reads a checkpoint's arrays that way). ``read_json`` reads the JSON
files fmnist wrote itself (run and study folders), naming the file when one is damaged. ``writable``
checks an output folder before any work is spent on what goes there.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
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


def open_zip(handle, max_members: int) -> zipfile.ZipFile:
    """``zipfile``'s view of the zip in ``handle`` (a seekable binary file), opened only once its end record
    claims at most ``max_members`` members and a directory to match: ``zipfile`` parses the whole directory
    it is told of, 46 bytes and a ``ZipInfo`` per member. A zip64 end record is refused (``zipfile`` would
    believe its counts instead, and no file under fmnist's caps needs one). ``InputError`` saying why."""
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - 65_557)  # the end record (22 bytes) and at most a 64 kB comment
    handle.seek(start)
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise InputError("not a zip file: truncated or another format")
    entries = int.from_bytes(tail[at + 10: at + 12], "little")
    directory = int.from_bytes(tail[at + 12: at + 16], "little")
    if entries > max_members or directory > max_members * 1024:
        raise InputError(f"a zip of {entries:,} files and a {directory:,}-byte directory; over the limit of "
                         f"{max_members:,} files")
    handle.seek(max(0, start + at - 20))
    if handle.read(4) == b"PK\x06\x07":  # the zip64 locator, right before the end record
        raise InputError("a zip64 archive (its counts are not checked); refused")
    handle.seek(0)
    try:
        return zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise InputError(f"not a readable zip file ({error})") from None


def zip_member(handle, info: zipfile.ZipInfo) -> bytes:
    """One member of the zip in ``handle``, inflated ``limits.ZIP_STEP`` bytes at a time and never past the
    size the directory declares; ``InputError`` unless the member is exactly what the directory says: stored
    or deflated, a deflate stream that ends where its declared compressed size does, the declared size and
    checksum. ``zipfile``'s ``read()`` inflates a member's whole compressed stream in one call before
    cutting it to the declared size (a 2 MB member declaring 5 kB cost 2 GB); a member that passes here
    costs any reader, Keras's included, at most its declared size."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise InputError(f"{name} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InputError(f"{name} is compressed with method {info.compress_type}; only stored and deflated "
                         "members are read (zipfile inflates bzip2 and lzma without a bound)")
    handle.seek(info.header_offset)
    local = handle.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise InputError(f"{name}: no member header where the zip's directory says")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    handle.seek(info.header_offset + 30 + name_length + extra_length)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
    left, pending, parts, size, checksum = info.compress_size, b"", [], 0, 0
    try:
        while pending or left or (inflater is not None and not inflater.eof):
            if not pending and left:
                pending = handle.read(min(limits.ZIP_STEP, left))
                if not pending:
                    raise InputError(f"{name} is truncated (the file ends inside it)")
                left -= len(pending)
            if inflater is None:
                piece, pending = pending, b""
            elif pending:
                piece = inflater.decompress(pending, limits.ZIP_STEP)  # at most ZIP_STEP bytes out per call
                pending = inflater.unconsumed_tail
            else:  # every byte is in: what zlib still holds (a few hundred bytes), and whether the stream ended
                piece = inflater.flush()
                if not inflater.eof:
                    raise InputError(f"{name}: its deflate stream does not end within its declared "
                                     f"{info.compress_size:,} bytes (truncated or damaged)")
            if inflater is not None and inflater.eof and (inflater.unused_data or pending or left):
                raise InputError(f"{name}: its compressed data goes on after its deflate stream ends")
            size += len(piece)
            if size > info.file_size:
                raise InputError(f"{name} {'holds' if inflater is None else 'inflates to'} more than its declared "
                                 f"{info.file_size:,} bytes; refused")
            checksum = zlib.crc32(piece, checksum)
            parts.append(piece)
    except zlib.error as error:
        raise InputError(f"{name}: damaged compressed data ({error})") from None
    if size != info.file_size or checksum != info.CRC:
        raise InputError(f"{name} fails its checksum ({size:,} of {info.file_size:,} bytes; damaged)")
    return b"".join(parts)


def check_npz(path: Path, cap: int) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file ``path`` (a checkpoint), read without trusting its headers: the
    members' declared sizes summed against ``cap`` before anything is inflated (a deflated member of zeros
    inflates a thousandfold), each member through ``zip_member``, each array's header against the bytes
    there (``parse_npy``, never unpickled), so nothing is allocated that the file does not hold.
    ``DataError`` naming the file."""
    try:
        with open(path, "rb") as handle:
            infos = open_zip(handle, limits.MAX_NPZ_MEMBERS).infolist()
            claimed = sum(info.file_size for info in infos)
            if claimed > cap:
                raise DataError(f"{path}: its arrays claim {claimed:,} bytes; over the limit of {cap:,} for a "
                                "checkpoint")
            arrays = {}
            for info in infos:
                payload = zip_member(handle, info)
                try:
                    arrays[info.filename.removesuffix(".npy")] = parse_npy(payload, cap)
                except InputError as problem:
                    raise InputError(f"{info.filename}: {problem}") from None
            return arrays
    except InputError as problem:
        raise DataError(f"{path}: damaged checkpoint ({problem})") from None
    except OSError as error:
        raise DataError(f"{path}: damaged checkpoint ({reason(error)})") from None


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
