"""A decoded picture to the 28x28 uint8 image the model takes: light item on black, like Fashion-MNIST.

Two conversions, by name:

``dataset`` (default) follows the conversion every Fashion-MNIST image went through (Xiao, Rasul,
Vollgraf 2017, arXiv 1708.07747, section 2), so that a person's picture looks like the training data:

0. first the product is separated from a textured background and a small camera tilt is undone
   (``fmnist.inputs.separate``): what follows then sees a product upright on a plain background;
1. trim the edges whose colour is within 5% of the largest RGB distance of the corners' colour
   (skipped, with a warning, when the corners disagree or the trim would leave almost nothing);
2. grey (ITU-R 601-2 luminance), negated when the item is darker than the trimmed-away colour;
3. stretched so that the trimmed-away colour is 0 and the item's extreme 255: all 60,000 training
   images have minimum 0 and maximum 254 or 255 (measured), a step the paper does not name. When the
   item is negated and parts of it are lighter than the background (a white collar on a grey table),
   its own lightest grey (99th percentile) is 0 instead, so that those parts are not clipped away;
4. the longest edge to 28 by area averaging, sharpened (Gaussian, radius and sigma 1.0), centred on
   black as the dataset centres (an odd pixel of margin goes left or on top: measured).

``simple`` is the conversion ``predict`` used before: grey, negated when the outermost ring of pixels
is light, the longest side to 28 (area averaging, bicubic when enlarging), centred; no trim.

A picture that is already 28x28 is taken as converted (the dataset's size; the paper sharpens only
what it resized): both conversions make it grey and negate it when its ring is light, nothing else.
The choices inside ``dataset`` were measured side by side in benchmarks/picture_robustness.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fmnist.inputs import plain
from fmnist.inputs import separate as separating

CONVERSIONS = ("dataset", "simple")
MIN_TRIMMED = 0.02  # a box under 2% of the picture's longest side is a speck, not an item: not trimmed
# Grey levels between background and item below which a picture is flagged. Test images rendered as a
# grey item on white (JPEG) lose accuracy fast below it: 7 points under raw at 24 levels, 25 at 16,
# 56 at 8; 1.4 to 3 points between 32 and 64 (benchmarks/picture_robustness.py --contrast).
LOW_CONTRAST = 32


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """The choices inside ``dataset``; each default won its side-by-side measurement."""

    resample: str = "box"  # area averaging; "nearest" is the paper's subsampling (worse on JPEG)
    # When to negate: "darker": the item is darker on average than the trimmed-away colour;
    # "background": that colour is light (> 127.5); "ring": the outermost ring is light, as ``simple``.
    cue: str = "darker"
    sharpen: bool = True  # the paper's step; it helps photos, which the dataset's sources were
    stretch: bool = True  # background to 0, the item's extreme to 255, as in every training image
    separate: bool = True  # a textured background replaced by its mean colour (fmnist.inputs.separate)
    untilt: bool = True  # a small camera tilt undone (fmnist.inputs.separate)


@dataclasses.dataclass
class Converted:
    image: np.ndarray  # (28, 28) uint8
    warnings: list[str]
    separated: object = None  # Pillow RGB: the product upright on a plain background, when that changed the picture
    turned: float = 0.0  # degrees turned to undo a tilt


def convert(image, conversion: str = "dataset", invert: str = "auto",
            options: DatasetOptions = DatasetOptions()) -> Converted:
    """Convert a decoded, upright Pillow image; ``invert`` is "auto", "yes" or "no"."""
    if conversion not in CONVERSIONS:
        raise ValueError(f"conversion must be one of {CONVERSIONS}, not {conversion!r}")
    if conversion == "simple" or image.size == (28, 28):
        small = simple(grey(image), invert)
        return Converted(small, _contrast_warning(int(small.max()) - int(small.min())))
    return _dataset(image, invert, options)


def grey(image) -> np.ndarray:
    """8-bit-scale grey values (float64, 0..255) of a decoded Pillow image."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)  # 16-bit: scaled, not clipped
    return np.asarray(_on_white(image).convert("L"), dtype=np.float64)


def colour(image):
    """The picture as 8-bit RGB, as a page shows it."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        return Image.fromarray(np.rint(grey(image)).astype(np.uint8)).convert("RGB")
    return _on_white(image).convert("RGB")


def _on_white(image):
    """Transparent pixels composited onto white, as a page shows them."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image


def ring_is_light(values: np.ndarray) -> bool:
    """``simple``'s rule: the mean of the outermost ring of pixels is above 127.5."""
    ring = np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])
    return float(ring.mean()) > 127.5


def simple(values: np.ndarray, invert: str) -> np.ndarray:
    from PIL import Image

    if invert == "yes" or (invert == "auto" and ring_is_light(values)):
        values = 255.0 - values
    height, width = values.shape
    if (height, width) != (28, 28):
        scale = 28 / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
        resized = np.asarray(Image.fromarray(values.astype(np.float32)).resize(size, method))
        canvas = np.zeros((28, 28), np.float64)
        top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
        canvas[top: top + size[1], left: left + size[0]] = resized
        values = canvas
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def trim_box(rgb, background: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom) of what is farther than the trim distance from ``background``;
    None when that is almost nothing (a speck, or a uniform picture)."""
    from PIL import Image

    far = plain.far_from(rgb, background)
    box = Image.fromarray(far).getbbox()
    if box is None or max(box[2] - box[0], box[3] - box[1]) < max(2, MIN_TRIMMED * max(rgb.size)):
        return None
    return box


def _dataset(image, invert: str, options: DatasetOptions) -> Converted:
    scene = separating.separate(colour(image), options.separate, options.untilt)
    changed = scene.separated or scene.turned != 0.0
    if changed:
        image = scene.picture  # 8-bit RGB from here on (a 16-bit picture's fraction of a grey level is lost)
    background, box, warnings = scene.background, None, list(scene.warnings)
    if background is None:
        warnings.append("no uniform background (the corners differ): not trimmed")
    else:
        box = trim_box(scene.picture, background)
        if box is None:
            warnings.append("almost nothing differs from the background: not trimmed")
            background = None
    values = grey(image.crop(box) if box else image)
    level = _luminance(background) if background else None
    if invert == "yes" or (invert == "auto" and _item_is_dark(image, values, background, options.cue)):
        if level is not None and scene.product is not None:  # the item's own light parts are not clipped
            product = scene.product[box[1]: box[3], box[0]: box[2]] if box else scene.product
            if product.any():
                level = max(level, float(np.percentile(values[product], 99)))
        values = 255.0 - values
        level = None if level is None else 255.0 - level
    if level is None:  # no background colour known: the darkest pixel stands for it
        level = float(values.min())
    span = float(values.max()) - level
    warnings += _contrast_warning(span)
    if options.stretch:
        values = np.clip((values - level) * (255.0 / span), 0, 255) if span > 0 else np.zeros_like(values)
        level = 0.0
    return Converted(_to_28(values, level, options), warnings, scene.picture if changed else None, scene.turned)


def _item_is_dark(image, values: np.ndarray, background, cue: str) -> bool:
    """Whether to negate under ``--invert auto`` (``values``: the trimmed picture's grey)."""
    if background is None or cue == "ring":  # no background colour to go by
        return ring_is_light(grey(image))
    if cue == "background":
        return _luminance(background) > 127.5
    return float(values.mean()) < _luminance(background)  # right on mid-grey backgrounds too


def _to_28(values: np.ndarray, level: float, options: DatasetOptions) -> np.ndarray:
    """Longest edge to 28, sharpened, centred on the background ``level``."""
    from PIL import Image, ImageOps

    small = _resize(values, options.resample)
    # One more ring of background around the 28x28 canvas, so the sharpening sees background beside the item.
    canvas = Image.new("F", (30, 30), level)
    canvas.paste(Image.fromarray(small), (1 + (29 - small.shape[1]) // 2, 1 + (29 - small.shape[0]) // 2))
    canvas = Image.fromarray(np.clip(np.rint(np.asarray(canvas)), 0, 255).astype(np.uint8))
    if options.sharpen:
        canvas = canvas.filter(sharpen_kernel())
    result = canvas.crop((1, 1, 29, 29))
    if options.stretch:  # averaging and sharpening moved the extremes: 0 and 255 again, as in the dataset
        result = ImageOps.autocontrast(result)
    return np.asarray(result, dtype=np.uint8).copy()


def _luminance(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]  # what Pillow's convert("L") computes


def _resize(values: np.ndarray, resample: str) -> np.ndarray:
    """Longest edge to 28, keeping the aspect ratio (float32 in and out: no rounding yet)."""
    from PIL import Image

    height, width = values.shape
    scale = 28 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale >= 1:
        method = Image.Resampling.BICUBIC  # a small picture: nothing to subsample or average
    else:
        method = {"box": Image.Resampling.BOX, "nearest": Image.Resampling.NEAREST}[resample]
    return np.asarray(Image.fromarray(values.astype(np.float32)).resize(size, method))


def sharpen_kernel():
    """ImageMagick's ``-sharpen 1x1`` (radius 1, sigma 1), which the paper's wording describes: a 3x3
    kernel of negated Gaussian weights whose centre is minus twice their sum, scaled to sum 1."""
    from PIL import ImageFilter

    weights = [-math.exp(-(u * u + v * v) / 2.0) for v in (-1, 0, 1) for u in (-1, 0, 1)]
    weights[4] = -2.0 * sum(weights)
    return ImageFilter.Kernel((3, 3), weights, scale=sum(weights))


def _contrast_warning(span: float) -> list[str]:
    if span < LOW_CONTRAST:
        return [f"low contrast after conversion (item and background {max(span, 0):.0f} of 255 grey levels apart)"]
    return []
