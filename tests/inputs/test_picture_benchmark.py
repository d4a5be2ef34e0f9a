"""The pictures benchmarks/picture_robustness.py renders measure the conversion, not the rendering: an
opaque product laid on white is the product photo the test image was made from."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist import data

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "picture_robustness.py"
COLOUR = (20, 30, 50)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("picture_robustness", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def images(real_dir):
    return data.load(real_dir).x_test[:300]


def _rendered(bench, image: np.ndarray, seed: int):
    """``opaque``'s item, and the test image's intensity enlarged the same way (its share, 0..1)."""
    item = bench.opaque(image, np.random.default_rng(seed), COLOUR)
    rng = np.random.default_rng(seed)  # the same draws as opaque's: the enlargement, then the filter
    rng.uniform(2, 8)
    method = bench.FILTERS[rng.integers(len(bench.FILTERS))]
    rows, columns = np.flatnonzero(image.max(axis=1)), np.flatnonzero(image.max(axis=0))
    crop = image[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1]
    share = np.asarray(Image.fromarray(crop).resize(item.size, method), np.float64)[..., None] / 255
    return item, share


@pytest.mark.integration
@pytest.mark.parametrize("seed", range(12))  # each of the four filters three times or so
def test_an_opaque_product_on_white_is_the_product_photo(bench, images, seed):
    """On white every pixel, outline included, is the test image's share of the item's colour (what the
    plain kinds render), within the rounding to 8 bits; an outline as dark as the inside was 200 levels off."""
    item, share = _rendered(bench, images[seed], seed)
    photo = Image.new("RGBA", item.size, (255, 255, 255, 255))
    photo.alpha_composite(item)
    expected = 255 * (1 - share) + np.array(COLOUR) * share
    assert np.abs(np.asarray(photo.convert("RGB"), np.float64) - expected).max() <= 1.5


def _inside(image: np.ndarray) -> np.ndarray:
    """The item's pixels of intensity COVER or more whose neighbours are too, as far as a filter reaches."""
    from PIL import ImageFilter

    rows, columns = np.flatnonzero(image.max(axis=1)), np.flatnonzero(image.max(axis=0))
    crop = Image.fromarray(image[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1])
    return np.asarray(crop.filter(ImageFilter.MinFilter(7)))


@pytest.mark.integration
@pytest.mark.parametrize("seed", range(12))
def test_an_opaque_product_covers_the_background_where_it_is_not_faint(bench, images, seed):
    """Fully inside, no background shows through (a texture would, under a translucent product); nothing
    covers outside it. On the first twelve test images with an inside (a sandal's straps have none)."""
    thick = [i for i in range(len(images)) if (_inside(images[i]) >= bench.COVER).sum() >= 20][:12]
    image = images[thick[seed]]
    item, share = _rendered(bench, image, seed)
    alpha = np.asarray(item)[..., 3]
    inside = np.asarray(Image.fromarray(_inside(image)).resize(item.size, Image.Resampling.NEAREST)) >= bench.COVER
    assert (alpha[inside] == 255).all()
    assert (alpha[share[..., 0] == 0] == 0).all()
