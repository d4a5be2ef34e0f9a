"""Mutations every surface shares: a payload's bytes (bit flips, interesting bytes, truncation, a header
field claiming something else, slices repeated, deleted or inserted), a JSON document's fields (other
types, huge or deeply nested values, removed or unknown fields) and a zip archive's headers (a directory
that disagrees with its streams: streams that go on past their declared sizes, other sizes, checksums or
methods, a zip64 record claiming 2**40 members). All take a ``random.Random``: a fixed seed gives the same
mutations on any machine.
"""

from __future__ import annotations

import bz2
import copy
import json
import math
import random
import struct
import zlib

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFE)
BIG = (0, 1, 6000, 2**16 - 1, 2**31 - 1, 2**32 - 1)


# Values a mutated JSON field takes: other types, paths, markup, NaN and infinity, huge numbers.
ODD_VALUES = (None, True, False, 0, -1, 1, 0.5, 2**31, 2**64, 10**400, 1e308, -1e308, math.nan, math.inf, -math.inf,
              "", "x", "nan", "1", "../x", "../../outside", "/etc/passwd", "a/b", "..", "<fz>", '"><fz a=1>', "\x00",
              "\u202e", [], {}, [None], {"": 0})
DEEP = "\x00deep\x00"  # a field to become 5,000 nested arrays once serialized


def mutate(payload: bytes, rng: random.Random) -> bytes:
    if len(payload) < 2:  # a request's body mutated twice may be this short
        return payload + bytes([rng.randrange(256)])
    data = bytearray(payload)
    kind = rng.randrange(8)
    if kind == 0:  # flip bits
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # interesting bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(INTERESTING)
    elif kind == 2:  # truncate
        del data[rng.randint(1, len(data) - 1):]
    elif kind == 3:  # truncate inside, keep the end (an IEND or EOI after too little data)
        cut = rng.randint(1, max(1, len(data) - 13))
        data = data[:cut] + data[-12:]
    elif kind == 4:  # a header field claims something else
        at = rng.randrange(min(len(data), 96))
        data[at: at + 4] = rng.choice(BIG).to_bytes(4, rng.choice(("big", "little")))
    elif kind == 5:  # duplicate a slice
        start = rng.randrange(len(data))
        data[start:start] = data[start: start + rng.randint(1, 256)]
    elif kind == 6:  # delete a slice
        start = rng.randrange(len(data))
        del data[start: start + rng.randint(1, 64)]
    else:  # insert random bytes
        start = rng.randrange(len(data))
        data[start:start] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return bytes(data)


def odd_value(rng: random.Random):
    draw = rng.random()
    if draw < 0.06:
        return "x" * rng.choice((1000, 2**17, 2**20))  # a huge field
    if draw < 0.09:
        return [0] * rng.choice((1000, 10**6))
    return DEEP if draw < 0.11 else rng.choice(ODD_VALUES)


def _slots(value, found: list) -> list:
    """Every (container, key) inside a JSON value."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in list(items):
        found.append((value, key))
        _slots(item, found)
    return found


def mutate_json(payload: bytes, rng: random.Random) -> bytes:
    """One field set to an odd value, removed, repeated, joined by an unknown one or its number scaled; or
    the text's bytes mutated."""
    try:
        value = json.loads(payload)
        slots = _slots(value, []) if isinstance(value, (dict, list)) else []
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack (DEEP, mutated again)
        slots = []
    kind = rng.randrange(6)
    if not slots or kind == 0:
        return mutate(payload, rng) if payload else b"{"
    container, key = rng.choice(slots)
    if kind == 1:
        del container[key]
    elif kind == 2 and isinstance(container, list):  # a row, member or program repeated
        container.insert(key, copy.deepcopy(container[key]))
    elif kind == 2:
        container[f"{key}x"] = odd_value(rng)  # an unknown field
    elif kind == 3 and isinstance(container[key], (int, float)):
        container[key] = container[key] * rng.choice((-1, 0, 10, 2**40)) + rng.choice((0, 1))
    else:
        container[key] = odd_value(rng)
    return json.dumps(value).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000).encode()


# -- zip headers: what the directory declares against what the streams hold --------------------------


def raw_zip(entries, zip64_entries: int | None = None) -> bytes:
    """A zip written field by field, so that its directory can say what its streams are not. ``entries``:
    (name, method, stream, declared size, declared CRC[, declared compressed size]); method 0 stored,
    8 deflated, 12 bzip2. ``zip64_entries``: a zip64 end record claiming that many members."""
    out, central = bytearray(), bytearray()
    for name, method, stream, size, crc, *compressed in entries:
        offset, encoded = len(out), name.encode()
        fields = (method, 0, 0x21, crc & 0xFFFFFFFF, (compressed or [len(stream)])[0], size, len(encoded))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, *fields, 0) + encoded + stream
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *fields, 0, 0, 0, 0, 0, offset) + encoded
    end = len(out) + len(central)
    if zip64_entries is not None:
        central += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, zip64_entries, zip64_entries,
                               len(central), len(out))
        central += struct.pack("<IIQI", 0x07064B50, 0, end, 1)
    return bytes(out + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                                             end - len(out), len(out), 0))


def deflated(data: bytes, tail: bytes = b"") -> bytes:
    """A raw deflate stream of ``data``, going on with ``tail`` (a finished raw deflate stream, such as
    ``deflated_run``'s) without a break: an inflater reads both as one stream."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    if not tail:
        return compressor.compress(data) + compressor.flush()
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH) + tail


def deflated_run(byte: bytes, size: int) -> bytes:
    """``size`` copies of ``byte`` as a finished raw deflate stream (about 1 kB per MiB), made 1 MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = byte * 2**20
    parts = [compressor.compress(block[: min(2**20, size - start)]) for start in range(0, size, 2**20)]
    return b"".join(parts) + compressor.flush()


def mutate_zip(members: dict[str, bytes], rng: random.Random, tails: list[bytes]) -> bytes:
    """``members`` as a zip whose directory and streams disagree for one member, one way of many."""
    entries = [[name, 0, data, len(data), zlib.crc32(data)] for name, data in members.items()]
    entry = rng.choice(entries)
    data = entry[2]
    kind = rng.randrange(9)
    entry[1:3] = 8, deflated(data)
    if kind == 0:  # declares its true size and checksum, but the stream goes on (spaces, zeros)
        entry[2] = deflated(data, rng.choice(tails))
    elif kind == 1:  # bytes after the deflate stream's end, inside the declared compressed size
        entry[2] += bytes(rng.randint(1, 64))
    elif kind == 2:  # the stream cut short
        entry[2] = entry[2][: rng.randrange(len(entry[2]))]
    elif kind == 3:  # another size declared
        entry[3] = rng.choice((0, max(0, len(data) - 1), len(data) + 1, 2 * len(data), 2**31 - 1, 2**32 - 1))
    elif kind == 4:  # another checksum
        entry[4] ^= 1 << rng.randrange(32)
    elif kind == 5:  # bzip2 (zipfile inflates it without a bound per read)
        entry[1:3] = 12, bz2.compress(data + bytes(rng.choice((0, 2**20))))
    elif kind == 6:  # stored, with more bytes than declared
        entry[1:3] = 0, data + bytes(rng.randint(1, 4096))
    elif kind == 7:  # another compressed size declared
        entry.append(max(0, len(entry[2]) + rng.choice((-100, -1, 1, 100, 2**20))))
    else:  # a zip64 end record claiming many members
        return raw_zip(entries, zip64_entries=rng.choice((len(entries), 10**6, 2**40)))
    return raw_zip(entries)
