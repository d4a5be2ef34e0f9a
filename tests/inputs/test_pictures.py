"""People's own pictures: the dataset's conversion step by step, and what `predict` shows of it."""

import json

import keras
import numpy as np
import pytest
from conftest import sample_images
from PIL import Image, ImageOps

from fmnist import normalization
from fmnist.cli import main
from fmnist.inputs import convert, plain
from fmnist.inputs.read import read_inputs
from fmnist.model import build_model


@pytest.fixture(scope="module")
def images():
    """Real test images when the dataset is installed, else generated ones."""
    return sample_images(40)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, images):
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_model("standard", normalization.get("standard").fit(images)).save(path)
    return path


def _on_canvas(item, background=(255, 255, 255), colour=(0, 0, 0), scale=4, margins=(30, 20, 50, 10)):
    """``item`` (Fashion-MNIST intensities) as the opacity of ``colour``, enlarged ``scale`` times without
    smoothing, on a canvas of ``background`` with margins (left, top, right, bottom) in pixels."""
    alpha = Image.fromarray(item).resize((28 * scale, 28 * scale), Image.Resampling.NEAREST)
    left, top, right, bottom = margins
    picture = Image.new("RGB", (28 * scale + left + right, 28 * scale + top + bottom), background)
    picture.paste(Image.new("RGB", alpha.size, colour), (left, top), alpha)
    return picture


def _convert(picture, **options):
    return convert.convert(picture, "dataset", "auto", convert.DatasetOptions(**options))


def _recoverable(item):
    """Whether the trim finds the item's own frame: its long side spans 28 pixels and no edge pixel of it
    is fainter than the 5% rule (those are trimmed, as the dataset trimmed them; tested below)."""
    def box(mask):
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return rows[0], rows[-1], columns[0], columns[-1]

    top, bottom, left, right = box(item > 0)
    height, width = bottom - top + 1, right - left + 1
    faint = plain.TRIM_DISTANCE / np.sqrt(3)  # the 5% rule for a grey item on white
    # centred as the conversion centres (an odd pixel of margin on the left or on top)
    centred = left == (29 - width) // 2 if height == 28 else width == 28 and top == (29 - height) // 2
    return box(item > faint) == (top, bottom, left, right) and centred


def test_trim_finds_the_known_box_by_the_five_percent_rule():
    background = (240, 228, 200)
    picture = Image.new("RGB", (200, 150), background)
    picture.paste((20, 20, 60), (37, 21, 137, 121))  # the item: x 37..136, y 21..120
    # 5% of the largest RGB distance is 22.08: a speck 22 away is background, one 23 away is not
    picture.putpixel((5, 140), tuple(v - 22 if i == 0 else v for i, v in enumerate(background)))
    assert plain.corner_colour(picture) == background
    assert convert.trim_box(picture, background) == (37, 21, 137, 121)
    picture.putpixel((160, 60), (background[0] - 23, *background[1:]))
    assert convert.trim_box(picture, background) == (37, 21, 161, 121)


def test_corners_that_disagree_or_a_speck_are_not_trimmed():
    quarters = Image.new("RGB", (120, 80), (255, 255, 255))
    for colour, quarter in zip([(0, 0, 0), (255, 0, 0), (0, 0, 255)], [(0, 0, 60, 40), (60, 40, 120, 80), (0, 40, 60, 80)]):
        quarters.paste(colour, quarter)  # no two corners agree, and no colour holds 30% of the border
    assert plain.corner_colour(quarters) is None and plain.band_colour(quarters) is None
    assert _convert(quarters).warnings == ["the product could not be told from the textured background",
                                        "no uniform background (the corners differ): not trimmed"]
    one_corner = Image.new("RGB", (120, 80), (255, 255, 255))
    one_corner.paste((0, 0, 0), (100, 60, 120, 80))  # an item in one corner: three still agree
    assert plain.corner_colour(one_corner) == (255, 255, 255)
    assert convert.trim_box(one_corner, (255, 255, 255)) == (100, 60, 120, 80)
    speck = Image.new("RGB", (300, 300), (250, 250, 250))
    speck.putpixel((150, 150), (0, 0, 0))
    converted = _convert(speck)
    assert converted.warnings[0] == "almost nothing differs from the background: not trimmed"
    blank = _convert(Image.new("RGB", (64, 64), (200, 200, 200)))
    assert blank.image.max() == 0 and any("low contrast" in warning for warning in blank.warnings)


def test_an_enlarged_test_image_on_white_converts_back(images):
    """Trim, stretch, area averaging and centring undo the enlargement; sharpening is the paper's, once (the
    tilt rule may turn an upright item by a degree or two: tested apart)."""
    chosen = [item for item in images if _recoverable(item)]
    assert len(chosen) >= 5
    for item in chosen:
        picture = _on_canvas(item)
        plain = _convert(picture, sharpen=False, untilt=False).image
        stretched = np.rint(item * (255.0 / item.max())).astype(np.uint8)  # the dataset's own range: 0..255
        assert np.abs(plain.astype(int) - stretched).max() <= 1
        sharpened = Image.fromarray(np.pad(plain, 1)).filter(convert.sharpen_kernel()).crop((1, 1, 29, 29))
        assert np.array_equal(_convert(picture, untilt=False).image, np.asarray(ImageOps.autocontrast(sharpened)))


def test_background_colours_and_the_negation_cue(images):
    item = next(item for item in images if _recoverable(item))
    expected = _convert(_on_canvas(item), sharpen=False).image
    cases = {
        "light grey": ((200, 200, 200), (10, 10, 10)),
        "tinted": ((245, 230, 200), (0, 0, 0)),
        "light on dark": ((30, 30, 40), (255, 255, 255)),
        "dark on mid grey": ((120, 120, 120), (0, 0, 0)),  # a light-background rule would not negate this
        "light on mid grey": ((140, 140, 140), (255, 255, 255)),
    }
    for name, (background, colour) in cases.items():
        converted = _convert(_on_canvas(item, background, colour), sharpen=False).image
        assert np.abs(converted.astype(int) - expected).mean() < 2, name
    dark_on_mid = _on_canvas(item, (120, 120, 120), (0, 0, 0))
    assert _convert(dark_on_mid, sharpen=False).image.mean() == pytest.approx(expected.mean(), abs=2)
    assert _convert(dark_on_mid, sharpen=False, cue="background").image.mean() < expected.mean() / 2


def test_sixteen_bit_exif_rotated_and_transparent_pictures_convert_like_their_plain_versions(tmp_path, images):
    item = next(item for item in images if _recoverable(item))
    plain = np.asarray(_on_canvas(item).convert("L"))
    Image.fromarray(plain).save(tmp_path / "plain.png")
    Image.fromarray(plain.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": stored turned the other way
    Image.fromarray(np.rot90(plain, k=1)).save(tmp_path / "rotated.png", exif=exif)
    cutout = np.zeros((*plain.shape, 4), np.uint8)
    cutout[..., 3] = 255 - plain  # a black item whose opacity is its darkness, on a transparent background
    Image.fromarray(cutout).save(tmp_path / "cutout.png")
    read = {item.input.rsplit("/", 1)[-1]: item for item in read_inputs([str(tmp_path)])}
    assert all(entry.error is None and entry.warning is None for entry in read.values())
    for name in ("sixteen.png", "rotated.png", "cutout.png"):
        assert np.abs(read[name].image.astype(int) - read["plain.png"].image).max() <= 1, name


def test_conversion_names_are_checked():
    with pytest.raises(ValueError, match="dataset"):
        read_inputs([], conversion="magick")
    with pytest.raises(ValueError, match="simple"):
        convert.convert(Image.new("L", (40, 40)), "magick")


def _low_contrast_picture(item, path):
    _on_canvas(item, (250, 250, 250), (230, 230, 230)).save(path)  # a pale item on white: 20 levels apart


def test_low_contrast_is_warned_in_every_output_format(tmp_path, model_file, images, capsys):
    item = next(item for item in images if _recoverable(item))
    _low_contrast_picture(item, tmp_path / "pale.png")
    _on_canvas(item).save(tmp_path / "clear.png")
    inputs = [str(model_file), str(tmp_path / "pale.png"), str(tmp_path / "clear.png")]
    assert main(["predict", *inputs, "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results[0]["warning"].startswith("low contrast after conversion") and results[1]["warning"] is None
    assert main(["predict", *inputs]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "(warning: low contrast after conversion" in table[1] and "warning" not in table[2]
    assert main(["predict", *inputs, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].endswith(",error,warning") and "low contrast" in rows[1] and rows[2].endswith(",,")


def test_save_inputs_writes_what_the_model_saw(tmp_path, model_file, images, capsys):
    _on_canvas(images[0]).save(tmp_path / "shirt.png")
    np.save(tmp_path / "pair.npy", images[1:3])
    out = tmp_path / "seen" / "inner"
    inputs = [tmp_path / "shirt.png", tmp_path / "pair.npy", tmp_path / "missing.png"]
    assert main(["predict", str(model_file), *map(str, inputs), "--save-inputs", str(out)]) == 1
    assert "wrote 3 converted inputs" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["0001-shirt.png", "0002-pair-0.png", "0003-pair-1.png"]
    read = read_inputs([str(tmp_path / "shirt.png")])[0].image
    assert np.array_equal(np.asarray(Image.open(out / "0001-shirt.png")), read)
    assert np.array_equal(np.asarray(Image.open(out / "0003-pair-1.png")), images[2])
    (tmp_path / "file").write_text("x")
    assert main(["predict", str(model_file), str(tmp_path / "shirt.png"), "--save-inputs", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_sheet_shows_each_picture_beside_its_input(tmp_path, model_file, images, capsys):
    _on_canvas(images[0]).save(tmp_path / "a.png")
    _low_contrast_picture(images[1], tmp_path / "b.png")
    np.save(tmp_path / "c.npy", images[2])
    inputs = [str(tmp_path / name) for name in ("a.png", "b.png", "c.npy", "gone.png")]
    sheet = tmp_path / "sheet.png"
    assert main(["predict", str(model_file), *inputs, "--sheet", str(sheet)]) == 1  # gone.png failed
    assert "(4 of 4 inputs)" in capsys.readouterr().err
    drawn = np.asarray(Image.open(sheet).convert("L"))
    assert drawn.shape == (340, 1440)  # two pictures a row, 7.2 in each: 2 rows of 1.5 in + the title, at 100 dpi
    assert drawn.min() == 0 and drawn.max() == 255
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left over
    for bad in ("sheet.pdf", "no-such-folder/sheet.png"):
        assert main(["predict", str(model_file), inputs[0], "--sheet", str(tmp_path / bad)]) == 2
        printed = capsys.readouterr()
        assert printed.out == "" and "--sheet" in printed.err and printed.err.count("\n") == 1  # before any work


def test_sheet_thumbnails_and_warnings(tmp_path, images):
    from fmnist.inference.predict import draw_sheet, predict

    _low_contrast_picture(images[1], tmp_path / "b.png")
    items = read_inputs([str(tmp_path / "b.png")], previews=1)
    assert items[0].preview.shape[2] == 3 and max(items[0].preview.shape[:2]) == 96
    assert "low contrast" in items[0].warning
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    assert draw_sheet(items * 3, predict(model, items * 3), tmp_path / "sheet.png", limit=2) == 2
    assert read_inputs([str(tmp_path / "b.png")])[0].preview is None  # kept only when asked for
