"""A small camera tilt undone: the last step of ``separate`` (separate.py), once the product lies on a
plain background.

Two rules find the angle, within 15 degrees either way, that stands the product upright:

* **Mirror**: garments and bags are left-right symmetric upright. The angle whose outline best matches
  its own mirror image (about its centre of mass) is the upright one, when that match is close: an
  intersection over union of at least 0.88. Shoes are not symmetric (their best match is 0.4 to 0.7 on
  average) and fall to the next rule.
* **Box**: the outline turned to the angle whose upright bounding box is smallest (the minimum-area
  rectangle of its convex hull): upright garments and sideways shoes alike are boxed tightest in the
  pose the dataset shows them, so nothing meant to lie sideways is stood up. Only a box at least 1%
  smaller than the upright one counts (7% of untilted test images would be turned otherwise).

Measured on test images enlarged to 112 pixels and tilted 4-10 degrees: the box rule alone misses by
1.6 degrees on average and by more than 3 degrees on 19% of them (a T-shirt's or a dress's outspread
outline hardly changes its box as it turns: 1.9 and 2.1 degrees on average); with the mirror rule first,
by 1.2 degrees and 12% (T-shirts 0.8, dresses 0.5). Turned back and reduced to 28x28, on two sets of
1,600 (seeds 11 and 12, a quarter of them untilted), under the raw images: tilted, box rule 1.4 and 3.2
points, both rules 0.9 and 1.7; untilted, 2.0 and 0.3 against 1.3 and 0.0. An untilted symmetric
outline matches its mirror best within a degree either way (nine in ten), hence MIN_TILT.

The tilted kinds of benchmarks/picture_robustness.py (``--beyond``) measure it beside the rest.
"""

from __future__ import annotations

import numpy as np

MAX_TILT = 15.0  # degrees either way; a larger turn is a pose, not a tilt
MIN_TILT = 1.5  # degrees: below it the picture is left as it is (the rules' own noise)
MIN_GAIN = 0.01  # turned only when that box is at least 1% smaller than the upright one
TILT_STEP = 0.5
MIRRORED = 0.88  # the mirror rule's least match (intersection over union) with its own mirror image
MIRROR_SIZE = 112  # pixels on the mask's longest side while the mirror rule turns it
ANGLES = np.arange(-MAX_TILT, MAX_TILT + TILT_STEP / 2, TILT_STEP)


def untilted(picture, product: np.ndarray, fill) -> tuple[object, np.ndarray, float]:
    """A Pillow ``picture`` and its ``product`` mask turned upright (``fill``: the colour of the corners the
    turn uncovers), and the degrees turned; both as they are, and 0.0, when the tilt is under MIN_TILT."""
    from PIL import Image

    angle = tilt(product)
    if abs(angle) < MIN_TILT:
        return picture, product, 0.0
    turned = picture.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
    mask = Image.fromarray(product.astype(np.uint8) * 255).rotate(angle, Image.Resampling.BILINEAR, expand=True)
    return turned, np.asarray(mask) > 127, angle


def tilt(product: np.ndarray) -> float:
    """Degrees to turn (counter-clockwise, as Pillow turns) to stand the product upright: the mirror rule's
    angle when its outline is symmetric, else the box rule's."""
    angle, match = mirror_tilt(product)
    return angle if match >= MIRRORED else box_tilt(product)


def mirror_tilt(product: np.ndarray) -> tuple[float, float]:
    """The angle (Pillow's sense) at which the product best matches its own mirror image, and that match."""
    from PIL import Image

    if not product.any():
        return 0.0, 0.0
    rows, columns = np.nonzero(product)
    crop = product[rows.min(): rows.max() + 1, columns.min(): columns.max() + 1]
    scale = min(1.0, MIRROR_SIZE / max(crop.shape))
    side = max(crop.shape)  # room to turn and to mirror about any column of the product
    canvas = Image.new("L", (2 * side, 2 * side))
    canvas.paste(Image.fromarray(crop.astype(np.uint8) * 255), ((2 * side - crop.shape[1]) // 2, (2 * side - crop.shape[0]) // 2))
    canvas = canvas.resize((max(1, round(2 * side * scale)),) * 2, Image.Resampling.BILINEAR)
    matches = np.array([_mirror_match(np.asarray(canvas.rotate(angle, Image.Resampling.BILINEAR)) > 127)
                        for angle in ANGLES])
    best = matches.max()
    return float(np.median(ANGLES[matches >= best - 1e-9])), float(best)


def _mirror_match(mask: np.ndarray) -> float:
    """Intersection over union of ``mask`` and its mirror image about its centre of mass's column."""
    count = mask.sum()
    if not count:
        return 0.0
    centre = (mask.sum(axis=0) * np.arange(mask.shape[1])).sum() / count
    mirrored = np.roll(mask[:, ::-1], int(round(2 * centre)) - (mask.shape[1] - 1), axis=1)
    return float((mask & mirrored).sum() / (mask | mirrored).sum())


def box_tilt(product: np.ndarray) -> float:
    """Degrees to turn so that the product's upright bounding box is smallest, when that is clearly smaller
    than upright; the middle of tied angles."""
    from scipy.spatial import ConvexHull, QhullError

    rows, columns = np.nonzero(product)
    points = np.stack([columns, rows], axis=1).astype(np.float64)
    try:
        points = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):  # too few points, or all on a line: nothing to turn
        return 0.0
    points -= points.mean(axis=0)
    radians = np.radians(ANGLES)[:, None]
    x = points[:, 0] * np.cos(radians) - points[:, 1] * np.sin(radians)
    y = points[:, 0] * np.sin(radians) + points[:, 1] * np.cos(radians)
    area = np.ptp(x, axis=1) * np.ptp(y, axis=1)
    if area[len(ANGLES) // 2] <= area.min() * (1.0 + MIN_GAIN):  # 7% of untilted test images, 78% of those at 4 degrees
        return 0.0
    return -float(np.median(ANGLES[area <= area.min() * 1.0005]))  # image rows run down: Pillow's sense is the other
