"""A small camera tilt undone: the last step of ``separate`` (separate.py), once the product lies on a
plain background.

The product's outline is turned to the angle, within 15 degrees either way, whose upright bounding box is
smallest (the minimum-area rectangle of its convex hull): upright garments and sideways shoes alike are
boxed tightest in the pose the dataset shows them, so nothing meant to lie sideways is stood up. Only a
box at least 1% smaller than the upright one counts (7% of untilted test images would be turned
otherwise). Measured on 1,500 test images: tilted 4-10 degrees, the rule wins back all but 2-3 points of
the 2-20 lost. It cannot see the tilt of an outline whose box hardly changes as it turns (a shirt with
outspread sleeves) and leaves such a picture as it is.

Tried and dropped: a mirror rule first (the angle at which a symmetric outline best matches its own
mirror image, for garments and bags; the box rule for the rest, turns under 1.5 degrees left alone).
On test images tilted 4-10 degrees it missed by 1.2 degrees on average against 1.6 (T-shirts 0.8
against 1.9), but in benchmarks/picture_robustness.py it moved the tilted kinds by less than their
noise (tilted -2.4 to -2.0 points, textured tilted -7.6 to -6.8, brick -8.4 to -9.2, all eight -4.4
either way), put shadows 2.4 points under raw instead of 1.8 (past the plain kinds' goal of 2), and
made the plain pictures' conversion 3.7 times slower (237 s against 64 for 10,000).

The tilted kinds of benchmarks/picture_robustness.py (``--beyond``) measure it beside the rest.
"""

from __future__ import annotations

import numpy as np

MAX_TILT = 15.0  # degrees either way; a larger turn is a pose, not a tilt
MIN_TILT = 1.0  # degrees: below it the picture is left as it is (the rule's own noise)
MIN_GAIN = 0.01  # turned only when that box is at least 1% smaller than the upright one
TILT_STEP = 0.5


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
    """Degrees to turn (counter-clockwise, as Pillow turns) so that the product's upright bounding box is
    smallest, when that is clearly smaller than upright; the middle of tied angles."""
    from scipy.spatial import ConvexHull, QhullError

    rows, columns = np.nonzero(product)
    points = np.stack([columns, rows], axis=1).astype(np.float64)
    try:
        points = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):  # too few points, or all on a line: nothing to turn
        return 0.0
    points -= points.mean(axis=0)
    angles = np.arange(-MAX_TILT, MAX_TILT + TILT_STEP / 2, TILT_STEP)
    radians = np.radians(angles)[:, None]
    x = points[:, 0] * np.cos(radians) - points[:, 1] * np.sin(radians)
    y = points[:, 0] * np.sin(radians) + points[:, 1] * np.cos(radians)
    area = np.ptp(x, axis=1) * np.ptp(y, axis=1)
    if area[len(angles) // 2] <= area.min() * (1.0 + MIN_GAIN):  # 7% of untilted test images, 78% of those at 4 degrees
        return 0.0
    return -float(np.median(angles[area <= area.min() * 1.0005]))  # image rows run down: Pillow's sense is the other
