"""The product apart from a textured background, and a camera tilt undone (fmnist.inputs.separate), as
``predict`` and the contact sheet see them."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fmnist.inputs import convert, plain, separate
from fmnist.inputs.read import read_inputs

SHIRT = [(30, 0), (70, 0), (100, 20), (90, 40), (78, 34), (78, 120), (22, 120), (22, 34), (10, 40), (0, 20)]
SHOE = [(0, 30), (10, 10), (45, 0), (60, 20), (130, 30), (140, 45), (140, 55), (0, 55)]  # lies sideways


def _product(outline, scale: int = 3, turn: float = 0.0):
    """A dark garment with its own lighter stripe, as RGBA (opaque inside, anti-aliased outline)."""
    width, height = (max(p[i] for p in outline) + 1 for i in (0, 1))
    big = Image.new("L", (width * 4 * scale, height * 4 * scale), 0)
    ImageDraw.Draw(big).polygon([(x * 4 * scale, y * 4 * scale) for x, y in outline], fill=255)
    cover = big.resize((width * scale, height * scale), Image.Resampling.BOX)
    look = Image.new("RGB", cover.size, (40, 40, 60))
    ImageDraw.Draw(look).rectangle((0, cover.size[1] // 2, cover.size[0], cover.size[1] // 2 + 4 * scale), fill=(110, 100, 90))
    item = look.convert("RGBA")
    item.putalpha(cover)
    return item.rotate(turn, Image.Resampling.BICUBIC, expand=True) if turn else item


def _wood(size, seed: int = 0) -> Image.Image:
    """A brown grain of slanted stripes with noise: a textured table."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float64)
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.3 * y) / 17 + rng.normal(0, 0.6, (size[1], size[0])))
    light = np.array([200, 150, 90])
    return Image.fromarray(np.clip(light * (0.6 + 0.4 * grain[..., None]), 0, 255).astype(np.uint8), "RGB")


def _wall(size, brick=(200, 120, 90), mortar=(235, 230, 220), course=200, length=420, joint=5) -> Image.Image:
    """Large bricks in courses with light mortar joints: one plain colour crossed by a few thin lines."""
    wall = Image.new("RGB", size, brick)
    draw = ImageDraw.Draw(wall)
    for row, top in enumerate(range(course // 2, size[1], course)):
        draw.rectangle((0, top, size[0], top + joint - 1), fill=mortar)
        for left in range((row % 2) * length // 2 + length // 3, size[0], length):
            draw.rectangle((left, top - course + joint, left + joint - 1, top), fill=mortar)
    return wall


def _on(item: Image.Image, ground: Image.Image, at=(60, 50)) -> Image.Image:
    picture = ground.convert("RGBA")
    picture.alpha_composite(item, at)
    return picture.convert("RGB")


def _mask(item: Image.Image, ground_size, at=(60, 50)) -> np.ndarray:
    mask = Image.new("L", ground_size, 0)
    mask.paste(item.getchannel("A"), at)
    return np.asarray(mask) > 127


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_a_product_on_wood_is_separated_and_converts_as_on_white():
    item = _product(SHIRT)
    size = (item.size[0] + 140, item.size[1] + 110)
    picture = _on(item, _wood(size))
    scene = separate.separate(picture)
    assert scene.separated and scene.background == (255, 255, 255) and scene.turned == 0.0 and not scene.warnings
    assert _iou(scene.product, _mask(item, size)) > 0.85  # the outline's blend with the wood is left out
    outside = ~_mask(item, size)
    assert np.asarray(scene.picture)[outside].mean() > 240  # the wood is gone
    on_white = convert.convert(_on(item, Image.new("RGB", size, (255, 255, 255)))).image.astype(int)
    new, before = (convert.convert(picture, options=convert.DatasetOptions(separate=separating)).image.astype(int)
                   for separating in (True, False))
    assert np.abs(new - on_white).mean() < 12  # the same 28x28 input, up to the outline
    assert np.abs(before - on_white).mean() > 40  # without the step the grain is in the input


def test_mortar_lines_that_touch_the_product_are_background():
    """A brick wall is one colour crossed by thin lines, here five times along the border, as a cropped
    product crosses it: lines that run from border to border are background, so the product is separated
    and the joints are not in its 28x28 input."""
    item = _product(SHIRT)
    size = (item.size[0] + 140, item.size[1] + 110)
    picture = _on(item, _wall(size))
    scene = separate.separate(picture)
    truth = _mask(item, size)
    assert scene.separated and _iou(scene.product, truth) > 0.95
    assert np.asarray(scene.picture)[~truth].mean() > 250  # the wall and its joints are gone
    on_white = convert.convert(_on(item, Image.new("RGB", size, (255, 255, 255)))).image.astype(int)
    assert np.abs(convert.convert(picture).image.astype(int) - on_white).mean() < 12


def test_mortar_as_wide_in_a_small_picture_is_background_too():
    """A wall photographed close in a small picture (81 by 89 pixels): joints as many pixels wide as in a
    large one, an eighth of the product's width. Learned at the picture's own size, the separation kept
    two thirds of the product (IoU 0.67)."""
    item = _product(SHIRT, scale=1).resize((41, 49), Image.Resampling.BOX)
    size = (item.size[0] + 40, item.size[1] + 40)
    picture = _on(item, _wall(size, course=50, length=200, joint=5), at=(20, 20))
    scene = separate.separate(picture)
    truth = _mask(item, size, at=(20, 20))
    assert scene.separated and scene.turned == 0.0 and _iou(scene.product, truth) > 0.9
    assert np.asarray(scene.picture)[~truth].mean() > 250  # the joints are gone


@pytest.mark.parametrize("joint", [9, 13])
def test_joints_wider_than_lines_around_a_dark_product_are_background(joint):
    """Joints 9 and 13 pixels wide in a small picture are too wide for lines, and lighter than the bricks
    where the product is darker: laid on white, product and joints stayed together (IoU 0.50 and 0.40).
    Light parts that cross the border in several pieces while the dark ones never reach it are a wall's."""
    item = _product(SHIRT, scale=1).resize((41, 49), Image.Resampling.BOX)
    size = (item.size[0] + 40, item.size[1] + 40)
    picture = _on(item, _wall(size, course=50, length=200, joint=joint), at=(20, 20))
    scene = separate.separate(picture)
    truth = _mask(item, size, at=(20, 20))
    assert scene.separated and _iou(scene.product, truth) > 0.95
    assert np.asarray(scene.picture)[~truth].mean() > 250


def test_a_cropped_products_white_parts_at_the_border_stay_product():
    """Cropped to its edges, a shirt's white yoke and hem meet the border in two pieces, as a wall's joints
    would, but its dark body meets it too: the whole shirt is laid on white."""
    item = _product(SHIRT)
    draw = ImageDraw.Draw(item)
    draw.rectangle((60, 0, 240, 100), fill=(250, 250, 250, 255))
    draw.rectangle((66, 330, 234, 362), fill=(250, 250, 250, 255))
    picture = _on(item, Image.new("RGB", item.size, (150, 150, 150)), at=(0, 0))
    scene = separate.separate(picture)
    assert scene.separated and scene.background == (255, 255, 255)
    assert _iou(scene.product, _mask(item, item.size, at=(0, 0))) > 0.95


def test_a_patterned_product_cropped_to_fill_the_frame_is_left_whole():
    """A checked shirt cut to its edges: the border band is the shirt's own pattern, and what differs from
    it is a plain pocket, 1% of the picture. Laid on white alone, the pocket was the whole 28x28 input; a
    product under 5% of the picture is not trusted, so the shirt converts as it is, with a warning."""
    y, x = np.mgrid[0:26, 0:22]
    intensity = np.where((y // 2 + x // 2) % 2 == 0, 250, 60) + np.random.default_rng(0).normal(0, 10, (26, 22))
    intensity[:3, 7:15] = 0  # the neck, where the grey background shows
    intensity[12:17, 4:9] = 160  # the pocket
    alpha = Image.fromarray(np.clip(intensity, 0, 255).astype(np.uint8)).resize((110, 130), Image.Resampling.BICUBIC)
    picture = Image.new("RGB", alpha.size, (200, 200, 200))
    picture.paste(Image.new("RGB", alpha.size, (30, 50, 40)), (0, 0), alpha)
    scene = separate.separate(picture)
    assert not scene.separated and scene.warnings == ["the product could not be told from the textured background"]
    whole = convert.convert(picture, options=convert.DatasetOptions(separate=False, untilt=False)).image
    assert np.array_equal(convert.convert(picture).image, whole)


def test_background_seen_through_gaps_in_the_product_is_white():
    """Wood seen through small gaps in a product (between a sandal's straps) is background: white, as the
    gaps of the dataset's product photos are, not wood filled in as part of the product."""
    item = _product(SHIRT)
    gaps = [(120, 120, 135, 135), (170, 200, 185, 215), (120, 270, 135, 285)]
    for gap in gaps:
        ImageDraw.Draw(item).rectangle(gap, fill=(0, 0, 0, 0))
    size = (item.size[0] + 140, item.size[1] + 110)
    scene = separate.separate(_on(item, _wood(size)))
    pixels = np.asarray(scene.picture)
    assert scene.separated and _iou(scene.product, _mask(item, size)) > 0.95
    for left, top, right, bottom in gaps:  # their middles, the outline's blend aside (the item lies at 60, 50)
        assert pixels[50 + top + 3: 50 + bottom - 2, 60 + left + 3: 60 + right - 2].mean() > 240


@pytest.mark.parametrize("turn", [-9.0, -5.0, 6.0, 12.0])
def test_a_tilted_product_is_turned_upright(turn):
    item = _product(SHIRT, turn=turn)
    picture = _on(item, Image.new("RGB", (item.size[0] + 80, item.size[1] + 80), (235, 235, 235)), at=(40, 40))
    scene = separate.separate(picture)
    assert scene.turned == pytest.approx(-turn, abs=1.0)
    assert not scene.separated and scene.background == (235, 235, 235)
    upright = _product(SHIRT)
    expected = convert.convert(_on(upright, Image.new("RGB", (upright.size[0] + 80, upright.size[1] + 80), (235,) * 3),
                                   at=(40, 40))).image
    untilted, left = (convert.convert(picture, options=convert.DatasetOptions(untilt=undo)).image > 64
                      for undo in (True, False))
    assert _iou(untilted, expected > 64) > max(0.9, _iou(left, expected > 64))  # the silhouettes in the 28x28 input


@pytest.mark.parametrize("outline, turn, expected", [(SHIRT, 0.0, 0.0), (SHOE, 0.0, 0.0), (SHOE, 5.0, -5.0),
                                                     (SHOE, -8.0, 8.0)])
def test_upright_and_sideways_products_keep_their_pose(outline, turn, expected):
    """A shoe lies sideways in the dataset: a small tilt of it is undone, never stood up by 90 degrees."""
    item = _product(outline, turn=turn)
    picture = _on(item, Image.new("RGB", (item.size[0] + 60, item.size[1] + 60), (255, 255, 255)), at=(30, 30))
    assert separate.separate(picture).turned == pytest.approx(expected, abs=1.0)


def test_opaque_light_parts_on_grey_are_laid_on_white_and_translucent_items_are_not():
    """A product lighter and darker than a plain grey table in parts (a white collar) is separated and laid
    on white; an evenly dark item keeps the table's grey as its zero."""
    item = _product(SHIRT)
    ImageDraw.Draw(item).rectangle((60, 0, 240, 100), fill=(250, 250, 250, 255))  # a white yoke
    picture = _on(item, Image.new("RGB", (item.size[0] + 100, item.size[1] + 100), (150, 150, 150)), at=(50, 50))
    scene = separate.separate(picture)
    assert scene.separated and np.asarray(scene.picture)[0, 0].tolist() == [255, 255, 255]
    converted = convert.convert(picture).image.astype(int)
    yoke, body = converted[2:7, 11:17].mean(), converted[14:20, 11:17].mean()
    assert body > 200 and yoke < 60  # white is no intensity, as in the dataset; not clipped into the body's
    plain = _on(_product(SHIRT), Image.new("RGB", (item.size[0] + 100, item.size[1] + 100), (150, 150, 150)), at=(50, 50))
    assert not separate.separate(plain).separated


@pytest.mark.parametrize("colour, noise", [((160, 158, 155), 0), ((170, 167, 162), 4)])
def test_an_opaque_products_parts_nearly_as_light_as_the_table_stay_on_it(colour, noise):
    """A grey band across the shirt, within the trim distance (22) of the grey table's colour but farther
    than the table's own pixels lie from it: laid on white, the whole shirt stays (the trim distance alone
    left its lower half off: IoU 0.67), and none of the table (its noise) does."""
    item = _product(SHIRT)
    draw = ImageDraw.Draw(item)
    draw.rectangle((60, 0, 240, 100), fill=(250, 250, 250, 255))  # a white yoke: laid on white
    draw.rectangle((0, 150, 300, 230), fill=(*colour, 255))  # 14 and 29 from the table's colour
    size = (item.size[0] + 100, item.size[1] + 100)
    table = 150 + np.random.default_rng(0).normal(0, noise, (size[1], size[0], 1)).repeat(3, axis=2)
    picture = _on(item, Image.fromarray(np.clip(np.rint(table), 0, 255).astype(np.uint8)), at=(50, 50))
    scene = separate.separate(picture, untilt=False)
    assert scene.separated and _iou(scene.product, _mask(item, picture.size, at=(50, 50))) > 0.95
    band = np.asarray(scene.picture)[50 + 160: 50 + 220, 50 + 100: 50 + 200].astype(int)
    assert np.abs(np.median(band, axis=(0, 1)) - colour).max() <= 2  # its own colour, not white


@pytest.mark.parametrize("background", [(255, 255, 255), (200, 200, 200), (250, 235, 240)])
def test_a_product_cropped_to_its_edges_stays_on_its_plain_background(background):
    """Cropped to the item, a dress covers the two lower corners and trousers cross the border four times:
    the background is still plain (the border band's commonest colour), nothing is separated or turned, and
    the conversion matches the same product with a margin."""
    dress = _product([(25, 0), (35, 0), (60, 150), (0, 150)]).crop((0, 0, 180, 450))
    cropped = _on(dress, Image.new("RGB", dress.size, background), at=(0, 0))
    scene = separate.separate(cropped)
    assert plain.band_colour(cropped) == background and scene.background == background
    assert not scene.separated and scene.turned == 0.0
    with_margin = _on(dress, Image.new("RGB", (dress.size[0] + 60, dress.size[1] + 60), background), at=(30, 30))
    difference = np.abs(convert.convert(cropped).image.astype(int) - convert.convert(with_margin).image.astype(int))
    assert difference.mean() < 8, difference.mean()
    legs = Image.new("RGB", (60, 150), background)
    ImageDraw.Draw(legs).polygon([(8, 0), (52, 0), (59, 149), (36, 149), (30, 40), (24, 149), (0, 149)], fill=(30, 30, 50))
    assert not separate.separate(legs).separated


def test_a_product_that_fills_a_textured_picture_is_flagged(tmp_path):
    item = _product(SHIRT, scale=3)  # a close-up: the product reaches into the border the wood is learned from
    picture = _on(item, _wood((item.size[0] + 20, item.size[1] + 20), seed=1), at=(10, 10))
    assert "may not be cleanly separated" in " ".join(convert.convert(picture).warnings)
    nothing = _wood((200, 150), seed=2)  # texture alone: no product to find
    assert separate.separate(nothing).product is None or "could not be told" in " ".join(convert.convert(nothing).warnings)
    path = tmp_path / "close-up.png"
    picture.save(path)
    [read] = read_inputs([str(path)], previews=1)
    assert "may not be cleanly separated" in read.warning


def test_the_sheet_gets_the_product_apart_and_the_turn(tmp_path):
    item = _product(SHOE, turn=7.0)
    picture = _on(item, _wood((item.size[0] + 140, item.size[1] + 110)))
    picture.save(tmp_path / "tilted-on-wood.png")
    [read] = read_inputs([str(tmp_path / "tilted-on-wood.png")], previews=1)
    assert read.separated is not None and read.separated.ndim == 3 and max(read.separated.shape[:2]) <= 96
    assert read.turned == pytest.approx(-7.0, abs=1.0)
    [plain] = read_inputs([str(tmp_path / "tilted-on-wood.png")])  # no sheet: no thumbnails kept
    assert plain.separated is None and plain.turned == read.turned
