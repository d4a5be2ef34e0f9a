"""`fmnist predict` against hostile and careless inputs (issue 10, items 4-7 and 13): every input gets a
row, a bad one an error row saying why, the others are still predicted; nothing is allocated from a
header's word; names are printed escaped; nothing but the summary reaches stderr."""

import io
import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import as_nobody, tiny_images, write_idx
from fuzz.seeds import flat_png, interlaced_png, png_chunk
from PIL import Image

from fmnist import normalization
from fmnist.cli import main
from fmnist.model import build_model


@pytest.fixture(scope="module")
def world():
    """A folder every user can read (pytest's own are private to root): for the tests run as nobody."""
    folder = Path(tempfile.mkdtemp(prefix="fmnist-hostile-"))
    folder.chmod(0o755)
    images = tiny_images(8, seed=3)[0]
    keras.utils.set_random_seed(0)
    build_model("standard", normalization.get("standard").fit(images)).save(folder / "model.keras")
    (folder / "model.keras").chmod(0o644)
    np.save(folder / "good.npy", images[:2])
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _rows(world, inputs, capsys, *options):
    code = main(["predict", str(world / "model.keras"), *map(str, inputs), "--format", "json", *options])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _assert_only_summary(err, failed, total):
    assert err == f"fmnist: {failed} of {total} inputs failed\n", err


def _jpeg(pixels, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _scan(payload):
    """Where a JPEG's first scan's data start and its end marker is."""
    start = payload.index(b"\xff\xda")
    return start + 2 + int.from_bytes(payload[start + 2: start + 4], "big"), payload.rindex(b"\xff\xd9")


def test_pictures_that_do_not_decode_completely_are_error_rows(tmp_path, world, capsys):
    pixels = np.random.default_rng(0).integers(0, 256, (112, 112), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    # IHDR says 112 rows; the compressed data hold 10, end properly, and IEND follows
    rows10 = b"".join(b"\x00" + pixels[row].tobytes() for row in range(10))
    (tmp_path / "rows10.png").write_bytes(png.getvalue()[:33] + png_chunk(b"IDAT", zlib.compress(rows10))
                                          + png_chunk(b"IEND", b""))
    interlaced = interlaced_png(pixels)  # the same for an interlaced picture: 60% of its passes
    passes = zlib.decompress(interlaced[41:-12 - 4])
    (tmp_path / "interlaced-cut.png").write_bytes(interlaced[:33] + png_chunk(b"IDAT", zlib.compress(passes[:len(passes) * 6 // 10]))
                                                  + png_chunk(b"IEND", b""))
    good = {}
    for name, options in (("base", {}), ("progressive", {"progressive": True}), ("restart", {"restart_marker_blocks": 2})):
        good[name] = _jpeg(np.stack([pixels] * 3, axis=-1), quality=90, **options)
        start, end = _scan(good[name])
        for share in (0, 20):  # 0% and 20% of the scan data, then the end marker
            (tmp_path / f"{name}-{share}.jpg").write_bytes(good[name][: start + (end - start) * share // 100] + b"\xff\xd9")
        (tmp_path / f"{name}-whole.jpg").write_bytes(good[name])
    liar = bytearray(_jpeg(pixels[:8, :8]))  # 8x8 of data under a header that says 6000x6000
    frame = liar.index(b"\xff\xc0")
    liar[frame + 5: frame + 9] = (6000).to_bytes(2, "big") * 2
    (tmp_path / "liar.jpg").write_bytes(bytes(liar))
    (tmp_path / "interlaced.png").write_bytes(interlaced_png(pixels))
    Image.fromarray(pixels).save(tmp_path / "whole.png")
    code, rows, err = _rows(world, [tmp_path], capsys)
    assert code == 1
    errors = {Path(row["input"]).name: row["error"] for row in rows}
    assert errors.pop("rows10.png") == "damaged PNG file (its image data end after 10 of 112 rows: incomplete)"
    assert errors.pop("interlaced-cut.png").startswith("damaged PNG file (its image data end at ")
    for name in good:
        for share in (0, 20):
            message = errors.pop(f"{name}-{share}.jpg")
            assert message.startswith("damaged JPEG file ("), (name, share, message)
    assert errors.pop("liar.jpg") == "damaged JPEG file (its scan data end early: the picture is incomplete)"
    assert set(errors) == {"base-whole.jpg", "progressive-whole.jpg", "restart-whole.jpg", "interlaced.png", "whole.png"}
    assert set(errors.values()) == {None}  # the complete pictures, restart markers and interlacing included
    _assert_only_summary(err, 9, 14)


def test_headers_cannot_make_it_allocate(tmp_path, world, capsys):
    import tracemalloc

    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 28, 28), }"
    (tmp_path / "claims.npy").write_bytes(b"\x93NUMPY\x01\x00" + (len(header) + 1).to_bytes(2, "little") + header
                                          + b"\n" + bytes(1000))
    unclosed = b"{'descr': '|u1', 'fortran_order': False, 'shape': (".ljust(117) + b"\n"
    (tmp_path / "unclosed.npy").write_bytes(b"\x93NUMPY\x01\x00" + (len(unclosed)).to_bytes(2, "little") + unclosed)
    with open(tmp_path / "sparse-idx3-ubyte", "wb") as handle:  # 1.4 GB by its size, 16 bytes on disk
        handle.write((0x803).to_bytes(4, "big") + (1_800_000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        handle.truncate(16 + 1_800_000 * 784)
    with open(tmp_path / "sparse.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|u1", "fortran_order": False, "shape": (100_000, 28, 28)})
        handle.truncate(100_000 * 784 + 128)
    (tmp_path / "inflates-idx3-ubyte.gz").write_bytes(__import__("gzip").compress(bytes(100 * 2**20), 9))
    (tmp_path / "claims.png").write_bytes(flat_png(16_700_000, 1)[:70])  # 70 bytes claiming 16.7 M pixels
    (tmp_path / "overflow-idx3-ubyte").write_bytes((0x803).to_bytes(4, "big") + (2**32 - 1).to_bytes(4, "big") * 3)
    names = ["claims.npy", "unclosed.npy", "sparse-idx3-ubyte", "sparse.npy", "inflates-idx3-ubyte.gz", "claims.png",
             "overflow-idx3-ubyte"]
    tracemalloc.start()
    code, rows, err = _rows(world, [tmp_path / name for name in names] + [world / "good.npy"], capsys)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 1 and peak < 300 * 2**20  # the reads themselves; the 100 MB gzip is inflated no further than the cap
    errors = [row["error"] for row in rows]
    assert errors[0] == ".npy shape (1000000000, 28, 28) of uint8 needs 784,000,000,000 bytes; over the limit of 67,108,864"
    assert errors[1] == "not a readable .npy array (damaged header: TokenError)"
    assert errors[2] == "1,411,200,016 bytes; larger than the limit of 67,108,864 for an input file"
    assert errors[3] == "78,400,128 bytes; larger than the limit of 67,108,864 for an input file"
    assert errors[4] == "decompresses to more than 67,108,864 bytes (the limit for an input)"
    assert errors[5].startswith("damaged PNG file (")
    assert errors[6] == ("16 bytes, but its header [4294967295, 4294967295, 4294967295] needs "
                         "79228162458924105385300197391 (truncated or padded)")  # no 64-bit overflow
    assert errors[7:] == [None, None]  # the good array's two images
    _assert_only_summary(err, 7, 9)


def test_files_that_cannot_be_read_get_the_reason(world, capsys):
    folder = Path(tempfile.mkdtemp(prefix="odd-", dir=world))
    folder.chmod(0o755)
    locked = folder / "locked.png"
    locked.write_bytes(b"\x89PNG\r\n\x1a\n")
    locked.chmod(0)
    closed = folder / "closed"
    closed.mkdir()
    (closed / "inside.png").write_bytes(b"x")
    closed.chmod(0)
    os.mkfifo(folder / "fifo.png")  # opening it would wait for a writer forever
    pictures = folder / "pictures"
    pictures.mkdir(mode=0o755)
    os.mkfifo(pictures / "pipe.jpg")  # in a folder: still a row of its own
    inputs = [locked, closed, closed / "inside.png", folder / "fifo.png", "/dev/zero", folder / "absent.png",
              pictures, world / "good.npy"]
    with as_nobody():
        code, rows, err = _rows(world, inputs, capsys)
    assert code == 1
    assert [row["error"] for row in rows] == [
        "permission denied", "permission denied", "permission denied", "not a regular file (FIFO)",
        "not a regular file (character device)", "no such file", "not a regular file (FIFO)", None, None]
    _assert_only_summary(err, 7, 9)
    # a "regular" file whose size says 0 and whose reading fails (and reading it as nobody is refused)
    code, rows, err = _rows(world, ["/proc/self/mem", world / "good.npy"], capsys)
    assert code == 1 and [row["error"] for row in rows] == ["cannot read (input/output error)", None, None]
    _assert_only_summary(err, 1, 3)


def test_every_input_gets_a_row(tmp_path, world, capsys):
    write_idx(tmp_path / "none", "t10k", np.zeros((0, 28, 28), np.uint8), np.zeros(0))
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "zero.npy", np.zeros((0, 28, 28), np.uint8))
    inputs = [tmp_path / "none" / "t10k-images-idx3-ubyte.gz", tmp_path / "empty", tmp_path / "zero.npy"]
    code, rows, err = _rows(world, inputs, capsys)
    assert code == 1
    assert [row["error"] for row in rows] == ["holds no images (0 of shape 28x28)",
                                              "folder holds no .png, .jpg or .jpeg files",
                                              ".npy shape (0, 28, 28); expected (28, 28) or (N, 28, 28)"]
    _assert_only_summary(err, 3, 3)


def test_scaled_arrays_are_refused_with_a_hint(tmp_path, world, capsys):
    images = tiny_images(2, seed=4)[0]
    np.save(tmp_path / "scaled.npy", images / 255.0)  # what the tutorial's users hold after X / 255
    np.save(tmp_path / "raw.npy", images.astype(np.float32))
    code, rows, err = _rows(world, [tmp_path / "scaled.npy", tmp_path / "raw.npy"], capsys)
    assert code == 1
    assert rows[0]["error"].startswith(".npy values span 0..") and "(multiply by 255)" in rows[0]["error"]
    assert [row["error"] for row in rows[1:]] == [None, None]


def test_names_are_printed_escaped_and_metadata_complaints_go_to_the_row(tmp_path, world, capsys):
    odd = tmp_path / "two\nlines\x1b[31m.npy"
    shutil.copy(world / "good.npy", odd)
    exif = Image.Exif()
    exif[0x0112] = 1
    damaged = bytearray(_jpeg(np.full((40, 40), 200, np.uint8), exif=exif.tobytes()))
    at = damaged.index(b"Exif\x00\x00") + 6
    damaged[at + 8: at + 10] = b"\xff\x7f"  # the IFD claims 32,767 entries: "Corrupt EXIF data"
    (tmp_path / "exif.jpg").write_bytes(bytes(damaged))
    assert main(["predict", str(world / "model.keras"), str(odd), str(tmp_path / "exif.jpg")]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # Pillow's warnings do not reach stderr
    table = captured.out.splitlines()
    assert len(table) == 4  # header and three rows: the name's newline is not printed raw
    assert table[1].startswith(str(tmp_path / "two\\nlines\\x1b[31m.npy[0]")) and "\x1b" not in captured.out
    assert "damaged metadata ignored" in table[3]
    code, rows, _ = _rows(world, [odd], capsys)
    assert code == 0 and rows[0]["input"] == str(odd)  # JSON keeps the exact name


def test_pictures_pillow_cannot_identify_say_so_without_python_internals(tmp_path, world, capsys):
    """A 0x0 PNG, a PNG with only its signature, a JPEG with only its start marker, a GIF named .png:
    each an error row in words, never the repr of an internal buffer ("<_io.BytesIO object at 0x…>")."""
    empty = png_chunk(b"IHDR", (0).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0]))
    (tmp_path / "zero.png").write_bytes(b"\x89PNG\r\n\x1a\n" + empty + png_chunk(b"IDAT", zlib.compress(b""))
                                        + png_chunk(b"IEND", b""))
    (tmp_path / "signature.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "marker.jpg").write_bytes(b"\xff\xd8\xff")
    gif = io.BytesIO()
    Image.new("L", (5, 5)).save(gif, format="GIF")
    (tmp_path / "gif.png").write_bytes(gif.getvalue())
    code, rows, _ = _rows(world, [tmp_path], capsys)
    assert code == 1 and len(rows) == 4
    for row in rows:
        assert row["error"] and row["error"].startswith(("damaged PNG file (", "damaged JPEG file (", "unsupported format")), row
        assert "object at 0x" not in row["error"] and "<" not in row["error"], row
