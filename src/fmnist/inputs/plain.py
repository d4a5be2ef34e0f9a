"""A plain background: its colour, whether the border is plain after all, and the product on it (the
first step of ``separate``, separate.py).

The background is plain when at least three corners agree (``corner_colour``), or, when a product cropped
to its edges covers two corners, three tenths of the border band share one colour (``band_colour``). The
band's pixels near that colour (the product's blended outline aside) do not vary like a texture, and
nine tenths of the band lie within the trim distance of it, or what does not is the product itself,
reaching the edge: one part of it, or at most six stretches of the border (a brick wall's mortar
crosses it 4 to 40 times, a cropped product 2 to 6). But thin lines of another colour that cross the
border (a brick wall's mortar, ``masks.thin_to_border``) make it a pattern: ``separate``'s textured path.
Lines are as thin as the textured path's in working pixels, and in a picture smaller than the working
size as thin in its own pixels (mortar photographed close is as many pixels wide in a small picture as
in a large one), unless the frame cuts the product and the lines' colour is a blend of its and the
background's: a small product's own thin parts (a sole, a handle) with their outline.

The product is what lies farther than the trim distance (``product``). One with parts both lighter and
darker than the background (a white collar on a grey table; an opaque product's own white parts) is laid
on white by ``separate``, the whole of it (``whole_product``): what lies farther from the background's
colour than its own pixels do, not only past the trim distance (its mid-tones may be as light as the
table). One only darker, or only lighter, stays on its background.
"""

from __future__ import annotations

import math

import numpy as np

from fmnist.inputs.masks import (
    LINE_CROSSINGS,
    LINE_WIDTH,
    WORKING_SIZE,
    border,
    disc,
    fill_small_holes,
    largest,
    opened,
    sample,
    thin_to_border,
)

TRIM_DISTANCE = 0.05 * math.sqrt(3) * 255  # the paper's 5% of the largest distance in RGB space
PLAIN_SHARE = 0.9  # of the border band within the trim distance of the corners' colour: a plain background
STRAY_BAND = 0.01  # or at most this share of the band differs, apart from the product: plain as well
MAX_CROSSINGS = 6  # or what differs crosses the border in at most this many stretches: the product, cropped
BAND_SHARE = 0.3  # corners that disagree: the band's commonest colour, when this share of the band is near it
# Unless the band's pixels near that colour spread this far (RMS distance in RGB) around their mean: a
# texture. Measured on the benchmark's kinds: plain ones, JPEG and shadows included, 0-4 (at most 9.5 in a
# picture cropped to the item's edges); wood, fabric, grass and gravel 7-13; brick 4-12.
TEXTURE_SPREAD = 8.0
# In a picture smaller than the working size, lines as thin in its own pixels: brick, 150 pictures (seed 2),
# 6.7 points under raw before, 2.0 after, but cropped products' soles and handles taken for lines (300 per
# plain kind, seed 1: cropped 6 pictures lost, 3 won). Unless the frame cuts the product (its thick part
# covers a hundredth of the outermost ring of pixels) and the lines' colour lies within half the trim
# distance of the way from the background's colour to the product's (its outline's blend): brick 3.3 points
# under raw, the plain kinds 3 won and 1 lost. Lines twice as wide when the product is not cut: brick (250
# pictures, seed 0) 7.6 -> 6.8 points, the plain kinds 1 won and 6 lost.
BLEND_DISTANCE = TRIM_DISTANCE / 2
CUT_SHARE = 0.01
# A product laid on white from a plain background: all that lies farther from its colour than twice the
# band's own pixels (their 99th percentile), at least this far (RGB). Measured on an opaque product on light
# grey (500 pictures, seed 0): 6.0 points under raw with the trim distance (its mid-tones left off), 2.4 with
# this (4 or less: all alike), 1.0 on white; 250 pictures each: 6 won and 1 lost, as JPEG 14 won and 5 lost,
# the tilted and coloured kinds 3 won and 6 lost (noise); the plain kinds' 3,000 pictures: none changed.
SILHOUETTE_DISTANCE = 4.0


def corner_colour(rgb) -> tuple[int, int, int] | None:
    """The colour of at least three corners that agree within the trim distance, else None."""
    width, height = rgb.size
    corners = np.array([rgb.getpixel(xy) for xy in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1))],
                       dtype=np.float64)
    agree = np.linalg.norm(corners - np.median(corners, axis=0), axis=1) <= TRIM_DISTANCE
    if agree.sum() < 3:  # two and two: no one background to trim
        return None
    return tuple(int(v) for v in np.rint(corners[agree].mean(axis=0)))


def band_colour(rgb) -> tuple[int, int, int] | None:
    """The border band's commonest colour: the one most of 600 of its pixels lie within the trim distance
    of, when at least ``BAND_SHARE`` of them do; else None."""
    pixels = np.asarray(rgb, dtype=np.float64)
    samples = sample(pixels[border(pixels.shape[:2], _band_width(pixels.shape[:2]))], 600)
    near = np.linalg.norm(samples[:, None] - samples[None], axis=-1) <= TRIM_DISTANCE
    best = near[near.sum(axis=1).argmax()]
    if best.mean() < BAND_SHARE:
        return None
    return tuple(int(v) for v in np.rint(samples[best].mean(axis=0)))


def far_from(rgb, colour) -> np.ndarray:
    """Where the picture lies farther than the trim distance from ``colour`` (Euclidean in RGB, as the
    paper measures it)."""
    return _squared_distance(rgb, colour) > TRIM_DISTANCE ** 2


def product(rgb, background) -> np.ndarray | None:
    """The product on a plain background, or None when the border is not plain after all: its pixels near
    the background's colour vary like a texture's, or less than nine tenths of it is near that colour and
    what is not is more than the product itself (a product cropped to its edges, or filling the frame,
    reaches the border: that does not make the background textured)."""
    from scipy import ndimage

    far = far_from(rgb, background)
    width = _band_width(far.shape)
    band = border(far.shape, width)
    near = np.asarray(rgb, dtype=np.float64)[band & ~ndimage.binary_dilation(far)]  # the outline's blend aside
    if len(near) and np.sqrt(((near - near.mean(axis=0)) ** 2).sum(axis=1).mean()) > TEXTURE_SPREAD:
        return None
    radius = round(LINE_WIDTH * max(1.0, max(far.shape) / WORKING_SIZE))
    lines = thin_to_border(far, band, radius, LINE_CROSSINGS)
    if lines.any() and not (_cut(far, radius) and _blend(rgb, background, lines, far & ~lines)):
        return None
    mask = opened(far)
    if 1.0 - far[band].mean() >= PLAIN_SHARE or (far & band & ~largest(mask)).mean() / band.mean() <= STRAY_BAND:
        return mask
    return mask if _stretches(far[width - 1: far.shape[0] - width + 1, width - 1: far.shape[1] - width + 1]) <= MAX_CROSSINGS else None


def whole_product(rgb, background) -> np.ndarray:
    """The mask of an opaque product to lay on white: its whole silhouette, cleaned, its outline's blend off."""
    return fill_small_holes(largest(_outline_off(_silhouette(rgb, background))))


def lighter_and_darker(rgb, background, product: np.ndarray, share: float = 0.01) -> bool:
    """Whether the product has parts both lighter and darker than a plain background: an opaque product
    with light parts (a white collar on a coloured table), which is laid on white as the dataset's were.
    A product only darker (or only lighter) is left on its background, where the trim and stretch measure
    it from the background's grey (a translucent or evenly dark item keeps every grey level)."""
    light, dark = _lighter_darker(rgb, background)
    return product.any() and light[product].mean() > share and dark[product].mean() > share


def light_lines(rgb, background, product: np.ndarray) -> bool:
    """Whether the product's parts lighter than the background cross the border twice or more while its
    darker parts do not reach it: a wall's joints, wider than the lines rule's, not a product's light parts."""
    from scipy import ndimage

    light, dark = _lighter_darker(rgb, background)
    band = border(light.shape, _band_width(light.shape))
    return ndimage.label(product & light & band, np.ones((3, 3)))[1] >= 2 and not (product & dark & band).any()


def _lighter_darker(rgb, background) -> tuple[np.ndarray, np.ndarray]:
    """The pixels lighter, and darker, than a plain background's grey by the trim distance's grey step."""
    grey = np.asarray(rgb.convert("L"), dtype=np.float64)
    level = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    step = TRIM_DISTANCE / math.sqrt(3)
    return grey > level + step, grey < level - step


def _squared_distance(rgb, colour) -> np.ndarray:
    from PIL import Image, ImageChops

    difference = ImageChops.difference(rgb, Image.new("RGB", rgb.size, colour))
    squared = np.zeros(rgb.size[::-1], np.uint32)
    for band in difference.split():  # band by band: a fifth of the time of a sum over a colour axis
        channel = np.asarray(band, dtype=np.uint16)
        squared += channel * channel
    return squared


def _silhouette(rgb, background) -> np.ndarray:
    """The whole of an opaque product on a plain background: what lies farther from its colour than the
    background's own pixels do (twice the 99th percentile of the band's pixels within the trim distance,
    at least ``SILHOUETTE_DISTANCE``), so that its parts nearly as light as the background stay in it."""
    squared = _squared_distance(rgb, background)
    ground = squared[border(squared.shape, _band_width(squared.shape))]
    ground = ground[ground <= TRIM_DISTANCE ** 2]
    own = math.sqrt(np.percentile(ground, 99)) if ground.size else 0.0
    return opened(squared > min(TRIM_DISTANCE, max(SILHOUETTE_DISTANCE, 2 * own)) ** 2)


def _cut(far: np.ndarray, radius: int) -> bool:
    """Whether the frame cuts the product: its thick part (opened by a disc of ``radius``) covers at least
    ``CUT_SHARE`` of the outermost ring of pixels (a brick wall's thick pieces of mortar cover less)."""
    from scipy import ndimage

    ring = border(far.shape, 1)
    return (largest(ndimage.binary_opening(far, disc(radius)), 1.0) & ring).sum() >= CUT_SHARE * ring.sum()


def _blend(rgb, background, lines: np.ndarray, product: np.ndarray) -> bool:
    """Whether the ``lines``' colour is a blend of the background's and the ``product``'s: a small
    product's thin parts (a sole, a handle) with their outline, not lines across the background."""
    pixels = np.asarray(rgb, dtype=np.float64)
    if not product.any():
        return False
    line, ground = np.median(pixels[lines], axis=0), np.array(background, dtype=np.float64)
    towards = np.median(pixels[product], axis=0) - ground
    share = np.clip((line - ground) @ towards / max(towards @ towards, 1e-9), 0.0, 1.0)
    return bool(np.linalg.norm(line - ground - share * towards) <= BLEND_DISTANCE)


def _stretches(mask: np.ndarray) -> int:
    """How many separate stretches of ``mask``'s outermost ring are set."""
    ring = np.concatenate([mask[0, :], mask[1:, -1], mask[-1, -2::-1], mask[-2:0:-1, 0]])
    return int(np.count_nonzero(ring & ~np.roll(ring, 1))) if not ring.all() else 1


def _band_width(shape) -> int:
    return max(1, round(0.02 * max(shape)))


def _outline_off(product: np.ndarray) -> np.ndarray:
    """The product without its outline's blend with the background: as many pixels as one working pixel."""
    from scipy import ndimage

    steps = max(1, round(max(product.shape) / WORKING_SIZE))
    inner = ndimage.binary_erosion(product, iterations=steps)
    return inner if inner.sum() > 64 else product
