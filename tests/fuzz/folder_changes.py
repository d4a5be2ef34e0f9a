"""How the ``studies`` and ``reports`` surfaces change a folder's file, and what a report page written
from it must not hold. A table's cell or row, a state file's array (cast, reshaped, NaN, a pickled
object), any file's bytes, or the file itself (removed, emptied, a folder, a link outside, 2 GiB sparse);
then the page must show the mutations' markup escaped and embed no picture from outside the folder.
"""

from __future__ import annotations

import csv
import io
import math
import random
import zipfile
from pathlib import Path

import numpy as np

from fuzz.mutations import deflated_run, mutate, mutate_json, mutate_zip

# Values a mutated CSV cell takes: other types, paths, markup, NaN and infinity, huge numbers.
ODD_FIELDS = ("", "nan", "inf", "-inf", "1e999", "-1", "1e308", "0x10", " 1", "1_0", "x", "../x", "../../outside",
              "/etc/passwd", "<fz>", '"><fz a=1>', '"', "\n", "\x00", "\u202e", "True", "ok", "diverged")
MARKUP = "<fz"  # the mutations' markup: report.html must show it escaped, never as a tag
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "h3", "p", "section",
             "div", "table", "thead", "tbody", "tr", "th", "td", "figure", "img", "figcaption", "details", "summary",
             "code", "strong", "small", "span", "ul", "li", "footer"}  # every tag reporting/ writes
PAGE_ATTRIBUTES = {"charset", "name", "content", "http-equiv", "lang", "class", "id", "scope", "src", "width", "height",
                   "alt"}
OUTSIDE_MARK = b"fz-outside-the-folder"  # in the pictures outside the folder that symlinks lead to


def mutate_csv(payload: bytes, rng: random.Random) -> bytes:
    """A cell set to odd text, a row repeated or removed, a column removed or renamed, a row with one field
    more or less, the rows shuffled or all but the header gone; or the bytes mutated."""
    rows = list(csv.reader(io.StringIO(payload.decode("utf-8", "replace"), newline="")))
    kind = rng.randrange(8)
    if len(rows) < 2 or not rows[0] or kind == 0:
        return mutate(payload, rng) if payload else b"x"
    line, column = rng.randrange(1, len(rows)), rng.randrange(len(rows[0]))
    if kind == 1:
        rows[line][column % len(rows[line])] = rng.choice(ODD_FIELDS + ("9" * 200_000,))  # over csv's field limit
    elif kind == 2:
        rows[line + 1: line + 1] = [list(rows[line])] * rng.choice((1, 1, 1000))
    elif kind == 3:
        del rows[line]
    elif kind == 4:
        for row in rows:
            del row[column: column + 1]
    elif kind == 5:
        rows[0][column] = rng.choice((rows[0][(column + 1) % len(rows[0])], "", "fz", rows[0][column].upper()))
    elif kind == 6:
        rows[line] = rows[line] + ["1"] if rng.random() < 0.5 else rows[line][:-1]
    else:
        rows[1:] = rng.sample(rows[1:], len(rows) - 1) if rng.random() < 0.5 else []
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def mutate_npz(payload: bytes, rng: random.Random) -> bytes:
    """A state file: its bytes, its zip headers, or one array cast, reshaped, given NaN or infinity,
    removed, or joined by another (a pickled object array among them)."""
    kind = rng.randrange(5)
    if kind == 0:
        return mutate(payload, rng)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if kind == 1:
        return mutate_zip(members, rng, [deflated_run(b" ", 2**20)])
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    name = rng.choice(sorted(arrays))
    array = arrays[name]
    if kind == 2:
        text = array.dtype.kind in "US"  # the study id and binding
        casts = ("U5", "S64", object) if text else ("f8", "f2", "i8", "u1", ">f4", "U5")
        arrays[name] = array.astype(rng.choice(casts))
    elif kind == 3 and array.dtype.kind == "f" and array.size:
        array = array.copy()
        array.reshape(-1)[rng.randrange(array.size)] = rng.choice((math.nan, math.inf, -math.inf, 3e38))
        arrays[name] = array
    elif kind == 3:
        flat = array.reshape(-1)
        arrays[name] = rng.choice((flat, flat[:-1], np.concatenate([flat, flat]), array[None]))
    elif rng.random() < 0.5:
        del arrays[name]
    else:
        arrays["fz"] = rng.choice((np.zeros(3, "f4"), np.array([{"a": 1}], dtype=object)))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def change_file(path: Path, rng: random.Random, outside: Path) -> str:
    """Change ``path`` one way; the way, in a word. A tenth of the changes are to the file itself: removed,
    emptied, a folder in its place, a link to a file outside the folder, or 2 GiB (sparse)."""
    if rng.random() < 0.1:
        way = rng.choice(("removed", "emptied", "a folder", "a link outside", "2 GiB"))
        target = outside / ("mark.png" if path.suffix == ".png" else f"copy{path.suffix}")
        if way == "a link outside" and path.suffix != ".png":
            target.write_bytes(path.read_bytes())  # another folder's file, as valid as this one
        path.unlink()
        if way == "emptied" or way == "2 GiB":
            with open(path, "wb") as handle:
                handle.truncate(2**31 if way == "2 GiB" else 0)
        elif way == "a folder":
            path.mkdir()
        elif way == "a link outside":
            path.symlink_to(target)
        return way
    change = {".json": mutate_json, ".csv": mutate_csv, ".npz": mutate_npz}.get(path.suffix, mutate)
    path.write_bytes(change(path.read_bytes(), rng))
    return "content"


def mark_png() -> bytes:
    """A valid PNG carrying OUTSIDE_MARK: embedded in a page, its base64 shows it came from outside."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("where", OUTSIDE_MARK.decode())
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def page_problems(path: Path) -> list[str]:
    """What a report page must not hold: a tag or attribute reporting/ never writes (markup from a file's
    field), a picture that is not embedded PNG data, or one from outside the folder."""
    import base64
    from html.parser import HTMLParser

    text = path.read_text(errors="replace")
    problems = [f"unescaped {MARKUP!r} in the page"] if MARKUP in text else []

    class Page(HTMLParser):
        def handle_starttag(self, tag, attributes):
            if tag not in PAGE_TAGS:
                problems.append(f"tag <{tag}>")
            for name, value in attributes:
                if name not in PAGE_ATTRIBUTES:
                    problems.append(f"attribute {name} of <{tag}>")
                elif name == "src" and not (value or "").startswith("data:image/png;base64,"):
                    problems.append(f"picture {str(value)[:80]!r} not embedded")
                elif name == "src" and OUTSIDE_MARK in base64.b64decode(value.partition(",")[2]):
                    problems.append("a picture from outside the folder")

    Page().feed(text)
    return problems
