"""The product apart from its background, and upright: what ``convert``'s dataset conversion needs first.

Every Fashion-MNIST image was made from a product photo on a plain light background, upright. People's
pictures are not all like that. ``separate`` returns the product on a plain background (the picture
itself when its background is plain already), turned upright when the camera was tilted:

* **Plain background** (plain.py): the border's colour, when at least three corners or three tenths of
  the border band agree on one and it is not a texture or crossed by lines (a brick wall's mortar); the
  product is what lies farther from it. One with parts both lighter and darker than it (a white collar
  on a grey table) is laid on white, as a separated one is (below), the whole of it, unless its lighter
  parts cross the border band in pieces where its darker parts do not reach it: a wall's joints too wide
  for lines, and the picture is textured. One only darker, or only lighter, stays on its background.
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
* **Doubts** become warnings: no product found in a textured picture, or only a piece under 5% of the
  picture (a patterned product cropped to fill the frame: the picture converts as it is), or one that
  fills it, reaches into the border band (a close-up: the band then holds some of the product), or
  leaves many background pixels as unlike the border as a product's.

Only SciPy's ``ndimage``, scikit-learn and Pillow are used, all of them fmnist's dependencies already.
OpenCV's GrabCut (150 MB installed), started from this mask, kept more background around the product:
19.6 points under raw on 240 textured pictures, against 5.8 for these steps before lines and background
seen through the product were handled. The choices were measured side by side in
benchmarks/picture_robustness.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fmnist.inputs import plain
from fmnist.inputs.masks import (
    LINE_CROSSINGS,
    LINE_WIDTH,
    WORKING_SIZE,
    border,
    fill_small_holes,
    largest,
    opened,
    sample,
    thin_to_border,
)
from fmnist.inputs.untilt import untilted

BAND = 0.04  # of the working size: the border band the background is learned from
# The outline settled twice, within 7 working pixels of it: measured on 300 textured pictures against one
# round within 4 pixels, 5.3 points under raw against 8.3 (a third round, a width of 10, or opening away
# lines 2 pixels thin such as a brick wall's mortar: no better).
SETTLE_ROUNDS, SETTLE_WIDTH = 2, 7
BORDER_QUANTILE, MARGIN = 99.0, 2.0  # unlike the background: less likely than 99% of its border band, by 2 nats
# When to say the separation is unsure: the product takes this share of the picture (it may have merged
# with the background), or almost none; or the background holds many pixels unlike its own border.
STRAY = 0.25  # of the product's area: background pixels as unlike the border as a product's
MAX_AREA = 0.85
MIN_AREA = 0.05  # a product cropped to fill the frame: the band is product, and what differs from it only
# fragments of it (under 8% of the picture for all 29 of 1,000 cropped pictures the textured path changed)
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
    background = plain.corner_colour(rgb) or plain.band_colour(rgb)
    product = plain.product(rgb, background) if background is not None else None
    if product is not None:
        scene = Scene(rgb, background, product)
        if textured and plain.lighter_and_darker(rgb, background, product):
            if plain.light_lines(rgb, background, product):
                scene = _textured(rgb)
            else:
                scene = _on_white(rgb, plain.whole_product(rgb, background), warnings=[])
    elif textured:
        scene = _textured(rgb)
    else:
        return Scene(rgb, None, None)
    if untilt and scene.product is not None and scene.product.any() and not scene.product[border(scene.product.shape, 1)].any():
        # a product the frame cuts has no box of its own to turn
        picture, product, turned = untilted(scene.picture, scene.product, scene.background)
        scene = dataclasses.replace(scene, picture=picture, product=product, turned=turned)
    return scene


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
    border_scores = model.score_samples(sample(features[band]))
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

    return GaussianMixture(3, covariance_type="full", reg_covar=1.0, random_state=0).fit(sample(samples))


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
