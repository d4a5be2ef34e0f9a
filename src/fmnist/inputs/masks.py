"""Binary masks of a picture, as the steps of ``separate`` (separate.py, plain.py) clean them: the border
band, an opening that drops specks, the largest parts, small holes filled, lines across the background;
and the working size both paths measure widths in.

SciPy's ``ndimage`` does the work (imported when first needed: it is heavy to import).
"""

from __future__ import annotations

import numpy as np

# Pixels on the longest side while the background is learned; a smaller picture is enlarged to it (480
# textured pictures, seed 1: 4.8 points under raw when it was not, 4.4 when it is; agreement with raw 0.881
# against 0.894).
WORKING_SIZE = 192
# Lines across the background (a brick wall's mortar): pieces of what differs from it thinner than 7
# working pixels (what an opening by a disc of radius 3 removes), reaching well away from anything thicker,
# that cross the border twice or more in all. Measured on 2,000 plain pictures (seed 1: fired 5 times, 3 of
# them then wrong) and on 60 brick pictures: 16.7 points under raw before, 6.7 after (5.0 when a single
# crossing counts, which fired on 20 plain pictures and lost 6 of them: cropped products' straps).
LINE_WIDTH, LINE_CROSSINGS = 3, 2


def border(shape, width: int) -> np.ndarray:
    band = np.zeros(shape, bool)
    band[:width], band[-width:], band[:, :width], band[:, -width:] = True, True, True, True
    return band


def disc(radius: int) -> np.ndarray:
    return np.hypot(*np.mgrid[-radius: radius + 1, -radius: radius + 1]) <= radius


def opened(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_opening(mask, ndimage.generate_binary_structure(2, 1))


def largest(mask: np.ndarray, share: float = 0.15) -> np.ndarray:
    """The largest part and any other at least ``share`` of its size (a sandal's straps, a bag's handle)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count < 2:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, count + 1))
    return np.isin(labels, np.flatnonzero(sizes >= share * sizes.max()) + 1)


def fill_small_holes(mask: np.ndarray, share: float = 0.002) -> np.ndarray:
    """Holes under ``share`` of the picture filled (a speck of the product lost); larger ones kept (a bag's
    handle, a sandal's straps)."""
    from scipy import ndimage

    holes = ndimage.binary_fill_holes(mask) & ~mask
    labels, count = ndimage.label(holes)
    if not count:
        return mask
    sizes = ndimage.sum(holes, labels, range(1, count + 1))
    return mask | np.isin(labels, np.flatnonzero(sizes < max(4, share * mask.size)) + 1)


def thin_to_border(mask: np.ndarray, band: np.ndarray, radius: int, crossings: int = 1,
                   length: float = 0.05) -> np.ndarray:
    """The lines of ``mask`` that reach the border ``band``: pieces thinner than ``2 * radius + 1`` pixels
    (what an opening by a disc of that radius removes) with at least ``length`` of the picture's size of
    pixels farther than two radii from its thick parts (a thick part's rounded corners are not lines).
    Such as a brick wall's mortar; a product the frame cuts is thick where it is cut. None when they
    cross the border fewer than ``crossings`` times in all (a product's strap cut by the frame)."""
    from scipy import ndimage

    thick = ndimage.binary_opening(mask, disc(radius))
    thin = mask & ~thick
    labels, count = ndimage.label(thin, np.ones((3, 3)))
    if not count:
        return thin
    away = thin & (ndimage.distance_transform_edt(~thick) > 2 * radius) if thick.any() else thin
    long = np.flatnonzero(ndimage.sum(away, labels, range(1, count + 1)) >= length * max(mask.shape)) + 1
    lines = np.isin(labels, np.intersect1d(np.unique(labels[band & thin]), long))
    return lines if ndimage.label(lines & band, np.ones((3, 3)))[1] >= crossings else np.zeros_like(lines)


def sample(samples: np.ndarray, most: int = 4000) -> np.ndarray:
    """At most ``most`` of ``samples``' rows, the same ones on every call (a fixed seed)."""
    if len(samples) <= most:
        return samples
    return samples[np.random.default_rng(0).choice(len(samples), most, replace=False)]
