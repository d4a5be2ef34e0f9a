"""The product apart from its background, and upright: what ``convert``'s dataset conversion needs first.

Every Fashion-MNIST image was made from a product photo on a plain light background, upright. People's
pictures are not all like that. ``separate`` returns the product on a plain background (the picture
itself when its background is plain already), turned upright when the camera was tilted:

* **Plain background**: at least three corners agree (``corner_colour``), or, when a product cropped to
  its edges covers two corners, three tenths of the border band share one colour (``band_colour``). The
  band's pixels near that colour (the product's blended outline aside) do not vary like a texture, and
  nine tenths of the band lie within the trim distance of it, or what does not is the product itself,
  reaching the edge: one part of it, or at most six stretches of the border (a brick wall's mortar
  crosses it 4 to 40 times, a cropped product 2 to 6). But thin lines of another colour that cross the
  border (a brick wall's mortar, ``masks.thin_to_border``) make it a pattern: the textured path below.
  Lines are as thin as the textured path's in working pixels, and in a picture smaller than the working
  size as thin in its own pixels (mortar photographed close is as many pixels wide in a small picture as
  in a large one), unless the frame cuts the product and the lines' colour is a blend of its and the
  background's: a small product's own thin parts (a sole, a handle) with their outline.
  The product is what lies farther. A product with parts both lighter and darker than a plain background (a white
  collar on a grey table; an opaque product's own white parts) is laid on white, as a separated one is
  (below), the whole of it: what lies farther from the background's colour than its own pixels do, not
  only past the trim distance (its mid-tones may be as light as the table). One only darker, or only
  lighter, stays on its background.
* **Textured or patterned background** (wood, grass, fabric, gravel: anything else): the background is
  what touches the border, by its colour and its texture. A Gaussian mixture (scikit-learn) learns the
  border band's smoothed colour and local contrast at a working size of 192 pixels (a smaller picture
  enlarged to it, so that every width below is the same share of any picture); the product is
  what that model explains poorly, its specks opened away, lines across the background dropped, its
  parts much smaller than the largest dropped, its small holes filled. The outline is then settled
  pixel by pixel: near it, a pixel belongs to whichever colour model, the product's inside or the
  background around it, explains it better (a step of what GrabCut iterates; two rounds), so no rim of
  background stays around the product. The same two models then judge every pixel of the product, so
  background seen through it (between a sandal's straps) is left out, not kept as product. The
  outline's own blend with the background is left out (one working pixel). The product is then laid,
  with its own shading, on white, as every product of the dataset was photographed, so it is negated
  as they were, light or dark. (Laid on the background's mean colour instead, the light products on
  darker textures were not negated: 55% against 95% raw on wood, 40 pictures.)
* **Tilt**: the product's outline turned upright when the camera was tilted (untilt.py).
* **Doubts** become warnings: no product found in a textured picture, or one that fills it, reaches into
  the border band (a close-up: the band then holds some of the product), or leaves many background
  pixels as unlike the border as a product's.

Only SciPy's ``ndimage``, scikit-learn and Pillow are used, all of them fmnist's dependencies already.
OpenCV's GrabCut (150 MB installed), started from this mask, kept more background around the product:
19.6 points under raw on 240 textured pictures, against 5.8 for these steps before lines and background
seen through the product were handled. The choices were measured side by side in
benchmarks/picture_robustness.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fmnist.inputs.masks import border, disc, fill_small_holes, largest, opened, thin_to_border
from fmnist.inputs.untilt import untilted

TRIM_DISTANCE = 0.05 * math.sqrt(3) * 255  # the paper's 5% of the largest distance in RGB space
PLAIN_SHARE = 0.9  # of the border band within the trim distance of the corners' colour: a plain background
STRAY_BAND = 0.01  # or at most this share of the band differs, apart from the product: plain as well
MAX_CROSSINGS = 6  # or what differs crosses the border in at most this many stretches: the product, cropped
BAND_SHARE = 0.3  # corners that disagree: the band's commonest colour, when this share of the band is near it
# Unless the band's pixels near that colour spread this far (RMS distance in RGB) around their mean: a
# texture. Measured on the benchmark's kinds: plain ones, JPEG and shadows included, 0-4 (at most 9.5 in a
# picture cropped to the item's edges); wood, fabric, grass and gravel 7-13; brick 4-12.
TEXTURE_SPREAD = 8.0
# Pixels on the longest side while the background is learned; a smaller picture is enlarged to it (480
# textured pictures, seed 1: 4.8 points under raw when it was not, 4.4 when it is; agreement with raw 0.881
# against 0.894).
WORKING_SIZE = 192
BAND = 0.04  # of the working size: the border band the background is learned from
# The outline settled twice, within 7 working pixels of it: measured on 300 textured pictures against one
# round within 4 pixels, 5.3 points under raw against 8.3 (a third round, a width of 10, or opening away
# lines 2 pixels thin such as a brick wall's mortar: no better).
SETTLE_ROUNDS, SETTLE_WIDTH = 2, 7
# Lines across the background (a brick wall's mortar): pieces of what differs from it thinner than 7
# working pixels (what an opening by a disc of radius 3 removes), reaching well away from anything thicker,
# that cross the border twice or more in all. Measured on 2,000 plain pictures (seed 1: fired 5 times, 3 of
# them then wrong) and on 60 brick pictures: 16.7 points under raw before, 6.7 after (5.0 when a single
# crossing counts, which fired on 20 plain pictures and lost 6 of them: cropped products' straps).
LINE_WIDTH, LINE_CROSSINGS = 3, 2
# In a picture smaller than the working size, lines as thin in its own pixels: brick, 150 pictures (seed 2),
# 6.7 points under raw before, 2.0 after, but cropped products' soles and handles taken for lines (300 per
# plain kind, seed 1: cropped 6 pictures lost, 3 won). Unless the frame cuts the product (its thick part
# covers a hundredth of the outermost ring of pixels) and the lines' colour lies within half the trim
# distance of the way from the background's colour to the product's (its outline's blend): brick 3.3 points
# under raw, the plain kinds 3 won and 1 lost. Lines twice as wide when the product is not cut: brick (250
# pictures, seed 0) 7.6 -> 6.8 points, the plain kinds 1 won and 6 lost.
BLEND_DISTANCE = TRIM_DISTANCE / 2
CUT_SHARE = 0.01
BORDER_QUANTILE, MARGIN = 99.0, 2.0  # unlike the background: less likely than 99% of its border band, by 2 nats
# When to say the separation is unsure: the product takes this share of the picture (it may have merged
# with the background), or almost none; or the background holds many pixels unlike its own border.
STRAY = 0.25  # of the product's area: background pixels as unlike the border as a product's
MAX_AREA = 0.85
MIN_AREA = 0.005
# A product laid on white from a plain background: all that lies farther from its colour than twice the
# band's own pixels (their 99th percentile), at least this far (RGB). Measured on an opaque product on light
# grey (500 pictures, seed 0): 6.0 points under raw with the trim distance (its mid-tones left off), 2.4 with
# this (4 or less: all alike), 1.0 on white; 250 pictures each: 6 won and 1 lost, as JPEG 14 won and 5 lost,
# the tilted and coloured kinds 3 won and 6 lost (noise); the plain kinds' 3,000 pictures: none changed.
SILHOUETTE_DISTANCE = 4.0
WHITE = (255, 255, 255)  # what a separated product is laid on: the dataset's products were photographed on white


@dataclasses.dataclass
class Scene:
    picture: object  # Pillow RGB: the product on a plain background, upright
    background: tuple[int, int, int] | None  # that plain colour; None when none was found
    product: np.ndarray | None  # bool (height, width): where the product is in ``picture``
    separated: bool = False  # a textured background was replaced by its mean colour
    turned: float = 0.0  # degrees turned (counter-clockwise) to undo a tilt
    warnings: list[str] = dataclasses.field(default_factory=list)


def separate(rgb, textured: bool = True, untilt: bool = True) -> Scene:
    """The product of a Pillow RGB picture on a plain background, upright (``textured``/``untilt``: do those steps)."""
    background = corner_colour(rgb) or band_colour(rgb)
    product = _plain_product(rgb, background) if background is not None else None
    if product is not None:
        scene = Scene(rgb, background, product)
        if textured and _lighter_and_darker(rgb, background, product):
            scene = _on_white(rgb, fill_small_holes(largest(_outline_off(_silhouette(rgb, background)))), warnings=[])
    elif textured:
        scene = _textured(rgb)
    else:
        return Scene(rgb, None, None)
    if untilt and scene.product is not None and scene.product.any() and not scene.product[border(scene.product.shape, 1)].any():
        # a product the frame cuts has no box of its own to turn
        picture, product, turned = untilted(scene.picture, scene.product, scene.background)
        scene = dataclasses.replace(scene, picture=picture, product=product, turned=turned)
    return scene


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
    samples = _sample(pixels[border(pixels.shape[:2], _band_width(pixels.shape[:2]))], 600)
    near = np.linalg.norm(samples[:, None] - samples[None], axis=-1) <= TRIM_DISTANCE
    best = near[near.sum(axis=1).argmax()]
    if best.mean() < BAND_SHARE:
        return None
    return tuple(int(v) for v in np.rint(samples[best].mean(axis=0)))


def far_from(rgb, colour) -> np.ndarray:
    """Where the picture lies farther than the trim distance from ``colour`` (Euclidean in RGB, as the
    paper measures it)."""
    return _squared_distance(rgb, colour) > TRIM_DISTANCE ** 2


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


def _plain_product(rgb, background) -> np.ndarray | None:
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
    product = opened(far)
    if 1.0 - far[band].mean() >= PLAIN_SHARE or (far & band & ~largest(product)).mean() / band.mean() <= STRAY_BAND:
        return product
    return product if _stretches(far[width - 1: far.shape[0] - width + 1, width - 1: far.shape[1] - width + 1]) <= MAX_CROSSINGS else None


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


def _textured(rgb) -> Scene:
    from PIL import Image
    from scipy import ndimage

    width, height = rgb.size
    scale = WORKING_SIZE / max(width, height)  # a small picture enlarged: every width below means the same share
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    pixels = np.asarray(rgb.resize((max(8, round(width * scale)), max(8, round(height * scale))), method), dtype=np.float64)
    band = border(pixels.shape[:2], max(2, round(BAND * max(pixels.shape[:2]))))
    unlike = _unlike_border(pixels, band)
    mask = opened(unlike)
    mask = largest(mask & ~thin_to_border(mask, band, LINE_WIDTH, LINE_CROSSINGS))
    for _ in range(SETTLE_ROUNDS):
        if mask.sum() >= 16:
            mask = _settled(pixels, mask, band)
            mask = largest(mask & ~thin_to_border(mask, band, LINE_WIDTH, LINE_CROSSINGS))
    mask = fill_small_holes(largest(mask))
    if mask.sum() >= 64:
        mask = largest(_without_background(pixels, mask, band))
    warnings = _doubts(mask, unlike, band)
    if mask.mean() < MIN_AREA:  # no product found: nothing to lay on white
        return Scene(rgb, None, None, warnings=warnings)
    if mask.sum() > 64:  # one working pixel off the outline: its blend with the background
        mask = largest(ndimage.binary_erosion(mask))
    return _on_white(rgb, mask, warnings)


def _on_white(rgb, mask: np.ndarray, warnings: list[str]) -> Scene:
    """The product (a cleaned ``mask``, any size: scaled to the picture's) laid on white."""
    from PIL import Image

    soft = Image.fromarray(mask.astype(np.uint8) * 255).resize(rgb.size, Image.Resampling.BILINEAR)
    picture = Image.composite(rgb, Image.new("RGB", rgb.size, WHITE), soft)
    return Scene(picture, WHITE, np.asarray(soft) > 127, separated=True, warnings=warnings)


def _outline_off(product: np.ndarray) -> np.ndarray:
    """The product without its outline's blend with the background: as many pixels as one working pixel."""
    from scipy import ndimage

    steps = max(1, round(max(product.shape) / WORKING_SIZE))
    inner = ndimage.binary_erosion(product, iterations=steps)
    return inner if inner.sum() > 64 else product


def _lighter_and_darker(rgb, background, product: np.ndarray, share: float = 0.01) -> bool:
    """Whether the product has parts both lighter and darker than a plain background: an opaque product
    with light parts (a white collar on a coloured table), which is laid on white as the dataset's were.
    A product only darker (or only lighter) is left on its background, where the trim and stretch measure
    it from the background's grey (a translucent or evenly dark item keeps every grey level)."""
    grey = np.asarray(rgb.convert("L"), dtype=np.float64)[product]
    level = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    step = TRIM_DISTANCE / math.sqrt(3)
    return grey.size > 0 and (grey > level + step).mean() > share and (grey < level - step).mean() > share


def _unlike_border(pixels: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Pixels whose smoothed colour and local contrast the border band's mixture model explains poorly."""
    from scipy import ndimage

    sigma = max(1.0, max(pixels.shape[:2]) / 100)
    smooth = np.stack([ndimage.gaussian_filter(pixels[..., c], sigma) for c in range(3)], axis=-1)
    grey = pixels @ np.array([0.299, 0.587, 0.114])
    mean = ndimage.gaussian_filter(grey, 2 * sigma)
    contrast = np.sqrt(np.maximum(ndimage.gaussian_filter(grey * grey, 2 * sigma) - mean * mean, 0.0))
    features = np.concatenate([smooth, contrast[..., None]], axis=-1)
    model = _mixture(features[band])
    border_scores = model.score_samples(_sample(features[band]))
    unlikely = -model.score_samples(features.reshape(-1, 4)).reshape(grey.shape)
    threshold = np.percentile(-border_scores, BORDER_QUANTILE) + MARGIN  # beyond what the border itself holds
    return unlikely > threshold


def _settled(pixels: np.ndarray, mask: np.ndarray, band: np.ndarray, width: int = SETTLE_WIDTH) -> np.ndarray:
    """The outline pixel by pixel: product or background, by which colour model explains it better."""
    from scipy import ndimage

    inside = ndimage.binary_erosion(mask, iterations=width)
    if inside.sum() < 16:
        inside = mask
    rim = ndimage.binary_dilation(mask, iterations=1) & ~inside
    settled = inside.copy()
    settled[rim] = _explained_as_product(pixels, mask, band, inside, rim, width)
    return opened(settled)


def _without_background(pixels: np.ndarray, mask: np.ndarray, band: np.ndarray) -> np.ndarray:
    """The product without the background seen through it (between a sandal's straps, a bag's handle):
    every pixel of it by which colour model explains it better."""
    from scipy import ndimage

    inside = ndimage.binary_erosion(mask, iterations=2)
    if inside.sum() < 16:
        return mask
    kept = mask.copy()
    kept[mask] = _explained_as_product(pixels, mask, band, inside, mask)
    return kept


def _explained_as_product(pixels, mask, band, inside, where, width: int = SETTLE_WIDTH) -> np.ndarray:
    """For the pixels ``where``: whether a colour model of the product's ``inside`` explains them better
    than one of the background (the ring from ``width`` to ``width + 2`` pixels around ``mask``, and the band)."""
    from scipy import ndimage

    colours = np.stack([ndimage.gaussian_filter(pixels[..., c], 0.7) for c in range(3)], axis=-1)
    around = ndimage.binary_dilation(mask, iterations=width + 2) & ~ndimage.binary_dilation(mask, iterations=width)
    product, background = _mixture(colours[inside]), _mixture(colours[around | band])
    return product.score_samples(colours[where]) > background.score_samples(colours[where])


def _mixture(samples: np.ndarray):
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(3, covariance_type="full", reg_covar=1.0, random_state=0).fit(_sample(samples))


def _sample(samples: np.ndarray, most: int = 4000) -> np.ndarray:
    if len(samples) <= most:
        return samples
    return samples[np.random.default_rng(0).choice(len(samples), most, replace=False)]


def _doubts(mask: np.ndarray, unlike: np.ndarray, band: np.ndarray) -> list[str]:
    """What makes a separation doubtful: no product, one that fills the picture or reaches its edge (the
    border the background is learned from then holds some of it), or much of the background unlike itself."""
    area = mask.mean()
    if area < MIN_AREA:
        return ["the product could not be told from the textured background"]
    edge = (mask & band).any()
    from scipy import ndimage

    near = ndimage.binary_dilation(mask, iterations=SETTLE_WIDTH + 2)  # the smoothed features' halo is not stray
    stray = (unlike & ~near).sum() / mask.sum()
    if area > MAX_AREA or edge or stray > STRAY:
        reason = "it fills the picture" if area > MAX_AREA else "it reaches the edge" if edge else "the texture is busy"
        return [f"the product may not be cleanly separated from the textured background ({reason})"]
    return []
