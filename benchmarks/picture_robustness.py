"""How well does `predict` read pictures people upload? Accuracy per rendering kind, old vs new conversion.

From the real test images, renders photo-like pictures a person might upload, with a fixed seed, writes
them as PNG or JPEG files and reads them back through `fmnist.inputs.read.read_inputs` and
`fmnist.inference.predict.predict`, the path `fmnist predict` takes. Prints, per kind, the tutorial model's
accuracy on the same test images as raw 28x28 pixels, with the old conversion (`simple`), with the new
one (`dataset`), and with the new one changed in one choice at a time: subsampling instead of area
averaging, negating by a light trimmed-away colour ("bg cue") or by a light border ring ("ring cue")
instead of by an item darker than the trimmed-away colour, no sharpening, no stretch.

    python benchmarks/picture_robustness.py RUN_DIR_OR_MODEL [--per-kind N] [--seed 0] [--jobs N] [--contrast | --beyond]

With 1,000 pictures per kind every test image is used once; the 95% interval of new-raw is then
about ±1.2 points per kind on the plain kinds, ±2 beyond them (250 per kind: ±4, too wide to judge a
5-point goal). Pictures are converted in ``--jobs`` processes at once, one per CPU by default.

Every picture is enlarged 2-8x with a random filter (nearest, bilinear, bicubic, Lanczos). Its item is
the test image's intensity used as opacity: pixel = background x (1 - a) + item colour x a, with
a = intensity / 255, so a black item on white is exactly the product photo the dataset was made from.
Kinds: upscaled (the whole 28x28 frame, black on white: what the old conversion handled), cropped (cut
to the item's edges), and with margins of 0-60% of the item's size on each side: white, light grey,
tinted (dark coloured items), light on dark, mid grey (a grey table: the item darker or lighter), jpeg
(quality 50-90), shadow (a soft offset shadow), unsharpened (the item as it was before the dataset's
sharpening step, as a photo shows it; the other kinds are enlargements of already-sharpened images).
``--contrast`` runs, instead of the table, the sweep behind the low-contrast warning: a grey item on
white, 8 to 96 grey levels darker, JPEG quality 75.

``--beyond`` runs, instead, the table of pictures beyond plain backgrounds (the product separated from
its background and a camera tilt undone: fmnist.inputs.separate). There the product is opaque, as a real
one is: it looks like the product photo the dataset was made from (a dark item on white, the test
image's intensity as the share of the item's colour). It covers the background fully where its
intensity is 32 or more. A fainter pixel is its outline, or a nearly white part: it has the tone of its
darkest neighbour and covers the share of the pixel that its own intensity is of that tone, so on white
the picture is exactly the product photo (the same test images as raw pixels: the same accuracy, 200
pictures), and elsewhere its outline blends with the background as a photo's does. Kinds: on wood (a generated
grain), fabric (a generated weave), brick, grass and gravel (scikit-image's photographs, tinted, at a
random scale), a coloured product on a lighter coloured background, tilted 4-10 degrees either way on
white or light grey, and on one of the five textures tilted 4-10 degrees. Columns: raw, the old
conversion (``simple``), the dataset conversion without the two new steps ("before"), the new one, and
the new one without each step.
"""

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import colorsys

import numpy as np
from PIL import Image, ImageFilter

from fmnist import data
from fmnist.inference.load import load_model
from fmnist.inference.predict import predict
from fmnist.inputs.convert import LOW_CONTRAST, DatasetOptions, sharpen_kernel
from fmnist.inputs.read import read_inputs

KINDS = ("upscaled", "cropped", "white", "light grey", "tinted", "light on dark", "mid grey", "jpeg", "shadow", "unsharpened")
FILTERS = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)
BEYOND = ("wood", "fabric", "brick", "grass", "gravel", "coloured", "tilted", "textured tilted")
TEXTURES = ("wood", "fabric", "brick", "grass", "gravel")
COVER = 32  # intensity from which an opaque product covers the background fully; fainter: its outline
BEYOND_VARIANTS = {
    "old": ("simple", DatasetOptions()),
    "before": ("dataset", DatasetOptions(separate=False, untilt=False)),
    "new": ("dataset", DatasetOptions()),
    "no separate": ("dataset", DatasetOptions(separate=False)),
    "no untilt": ("dataset", DatasetOptions(untilt=False)),
}
VARIANTS = {  # column name: (conversion, options); each "new with …" changes one choice of the new one
    "old": ("simple", DatasetOptions()),
    "new": ("dataset", DatasetOptions()),
    "subsample": ("dataset", DatasetOptions(resample="nearest")),
    "bg cue": ("dataset", DatasetOptions(cue="background")),
    "ring cue": ("dataset", DatasetOptions(cue="ring")),
    "no sharpen": ("dataset", DatasetOptions(sharpen=False)),
    "no stretch": ("dataset", DatasetOptions(stretch=False)),
}


@dataclasses.dataclass
class Scene:
    background: tuple
    item: tuple
    margins: float = 0.6  # at most this fraction of the item's size on each side; None: the whole 28x28 frame
    shadow: bool = False
    unsharpened: bool = False  # the item before the dataset's sharpening step, as a photo shows it
    jpeg: int | None = None  # quality


def scene(kind: str, rng: np.random.Generator) -> Scene:
    dark_item = tuple(int(v) for v in rng.integers(0, 60, 3))
    white = (255, 255, 255)
    grey = (int(rng.integers(170, 236)),) * 3
    tint = tuple(int(v) for v in 255 - rng.integers(0, 60, 3))
    if kind == "upscaled":
        return Scene(white, (0, 0, 0), margins=None)
    if kind == "white":
        return Scene(white, dark_item)
    if kind == "light grey":
        return Scene(grey, dark_item)
    if kind == "tinted":
        return Scene(tint, dark_item)
    if kind == "light on dark":
        return Scene(tuple(int(v) for v in rng.integers(0, 60, 3)), tuple(int(v) for v in rng.integers(200, 256, 3)))
    if kind == "mid grey":  # a grey table or card: the item may be darker or lighter than it
        item = dark_item if rng.integers(2) else tuple(int(v) for v in rng.integers(200, 256, 3))
        return Scene((int(rng.integers(90, 166)),) * 3, item)
    background = [white, grey, tint][rng.integers(3)]
    if kind == "cropped":  # cut to the item's edges, as the trouser picture was
        return Scene(background, dark_item, margins=0.0)
    if kind == "jpeg":
        return Scene(background, dark_item, jpeg=int(rng.integers(50, 91)))
    if kind == "shadow":
        return Scene(background, dark_item, shadow=True)
    return Scene(background, dark_item, unsharpened=True)


def render(image: np.ndarray, setting: Scene, rng: np.random.Generator) -> Image.Image:
    if setting.unsharpened:
        image = unsharpen(image)
    rows, columns = np.flatnonzero(image.max(axis=1)), np.flatnonzero(image.max(axis=0))
    if setting.margins is not None:  # the item alone; the whole 28x28 frame otherwise
        image = image[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1]
    factor = rng.uniform(2, 8)
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    alpha = Image.fromarray(image).resize(size, FILTERS[rng.integers(len(FILTERS))])
    fractions = rng.uniform(0, setting.margins or 0.0, 4)
    left, right, top, bottom = (fractions * [size[0], size[0], size[1], size[1]]).round().astype(int)
    picture = Image.new("RGB", (size[0] + left + right, size[1] + top + bottom), setting.background)
    if setting.shadow:
        darkness = rng.uniform(0.1, 0.3)
        offset = (rng.uniform(0.02, 0.06, 2) * size).round().astype(int)
        mask = Image.new("L", picture.size, 0)
        mask.paste(alpha, (left + int(offset[0]), top + int(offset[1])))
        mask = mask.filter(ImageFilter.GaussianBlur(0.04 * max(size))).point(lambda v: round(v * darkness))
        shade = tuple(round(c * 0.2) for c in setting.background)
        picture.paste(Image.new("RGB", picture.size, shade), (0, 0), mask)
    picture.paste(Image.new("RGB", size, setting.item), (left, top), alpha)
    return picture


def unsharpen(image: np.ndarray) -> np.ndarray:
    """The 28x28 image the dataset's sharpening (``-sharpen 1x1``) turned into ``image``: divided by the
    kernel's frequency response (never below 1, so the division is stable), on a zero-padded canvas."""
    size, scale, _, weights = sharpen_kernel().filterargs
    kernel = np.zeros((64, 64))
    kernel[:3, :3] = np.reshape(weights, size) / scale
    kernel = np.roll(kernel, (-1, -1), axis=(0, 1))  # centred on (0, 0)
    padded = np.zeros((64, 64))
    padded[:28, :28] = image
    before = np.real(np.fft.ifft2(np.fft.fft2(padded) / np.fft.fft2(kernel)))[:28, :28]
    return np.clip(np.rint(before), 0, 255).astype(np.uint8)


def write_pictures(folder: Path, images: np.ndarray, kinds: list[str], seed: int) -> list[str]:
    files = []
    for number, (image, kind) in enumerate(zip(images, kinds)):
        rng = np.random.default_rng([seed, number])  # each picture its own stream, as the shuffles are
        if kind in BEYOND:
            picture, quality = beyond(kind, image, rng), None
        else:
            setting = scene(kind, rng)
            picture, quality = render(image, setting, rng), setting.jpeg
        path = folder / f"{number:05d}.{'jpg' if quality else 'png'}"
        if quality:
            picture.save(path, quality=quality)
        else:
            picture.save(path, compress_level=1)  # lossless all the same; fast to write
        files.append(str(path))
    return files


def beyond(kind: str, image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A picture of the kinds beyond plain backgrounds (see the module's docstring)."""
    dark = tuple(int(v) for v in rng.integers(0, 60, 3))
    turn = rng.uniform(4, 10) * rng.choice([-1, 1]) if "tilted" in kind else 0.0
    if kind in TEXTURES or kind == "textured tilted":
        name = kind if kind in TEXTURES else TEXTURES[rng.integers(len(TEXTURES))]
        return place(opaque(image, rng, dark), lambda size: texture(name, size, rng), rng, turn)
    if kind == "coloured":  # a coloured product on a lighter coloured background
        hue = rng.uniform(0, 1)
        item = colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 1), rng.uniform(0.2, 0.7))
        ground = colorsys.hsv_to_rgb((hue + rng.uniform(0.2, 0.8)) % 1, rng.uniform(0.1, 0.5), rng.uniform(0.8, 1))
        ground = tuple(round(255 * v) for v in ground)
        return place(opaque(image, rng, tuple(round(255 * v) for v in item)),
                     lambda size: Image.new("RGB", size, ground), rng, turn)
    ground = [(255, 255, 255), (int(rng.integers(170, 236)),) * 3][rng.integers(2)]
    return place(opaque(image, rng, dark), lambda size: Image.new("RGB", size, ground), rng, turn)


def opaque(image: np.ndarray, rng: np.random.Generator, colour: tuple) -> Image.Image:
    """The item alone, enlarged 2-8x, as RGBA: opaque from intensity COVER, and on white the product photo.

    A fainter pixel takes its darkest neighbour's tone and covers what its intensity is of that tone.
    (Covering intensity / COVER of it, the outline was as dark as the product's inside: on white, 7.0
    points under raw pixels on 200 pictures, seed 1, a fattened product rather than the conversion.)"""
    rows, columns = np.flatnonzero(image.max(axis=1)), np.flatnonzero(image.max(axis=0))
    image = image[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1]
    factor = rng.uniform(2, 8)
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    method = FILTERS[rng.integers(len(FILTERS))]
    share = np.asarray(Image.fromarray(image).resize(size, method), np.float64) / 255
    spread = np.asarray(Image.fromarray(image).filter(ImageFilter.MaxFilter(3)))
    spread = np.where(image >= COVER, image, spread)  # only the outline takes its darkest neighbour's tone
    tone = np.asarray(Image.fromarray(spread).resize(size, method), np.float64)[..., None] / 255
    tone = np.maximum(tone, share[..., None])  # never lighter than the pixel itself (a filter's ringing)
    look = 255 * (1 - tone) + np.array(colour, np.float64) * tone
    cover = np.clip(share / np.maximum(tone[..., 0], 1 / 255), 0, 1)  # the outline: its share of the pixel
    rgba = np.dstack([look, cover * 255])
    return Image.fromarray(np.clip(np.rint(rgba), 0, 255).astype(np.uint8), "RGBA")


def place(item: Image.Image, ground, rng: np.random.Generator, turn: float) -> Image.Image:
    """The item turned by ``turn`` degrees on ``ground(size)`` with margins of 10-60% of its size."""
    if turn:
        item = item.rotate(turn, Image.Resampling.BICUBIC, expand=True)
    width, height = item.size
    left, right, top, bottom = (rng.uniform(0.1, 0.6, 4) * [width, width, height, height]).round().astype(int)
    picture = ground((width + left + right, height + top + bottom)).convert("RGBA")
    picture.alpha_composite(item, (int(left), int(top)))
    return picture.convert("RGB")


def texture(name: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Wood and fabric generated; brick, grass and gravel from scikit-image's photographs, tinted."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    if name == "wood":
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.04, 0.12) * max(size)
        along, across = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
        coarse = rng.random((height // 8 + 2, width // 8 + 2)) * 255
        noise = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)) / 255
        grain = 0.5 + 0.5 * np.sin(2 * np.pi * (along / period + 2 * noise + 0.3 * np.sin(across / (3 * period))))
        share = np.clip(0.65 * grain + 0.35 * noise + rng.normal(0, 0.08, (height, width)), 0, 1)
        light, dark = rng.uniform([150, 100, 50], [230, 170, 110]), rng.uniform(0.45, 0.7)
        pixels = light * (dark + (1 - dark) * share[..., None])
    elif name == "fabric":
        cell = rng.uniform(0.015, 0.04) * max(size)
        weave = np.sin(np.pi * x / cell) * np.sin(np.pi * y / cell)
        share = np.clip(0.5 + 0.25 * weave + 0.2 * np.sin(np.pi * (x + y) / cell) + rng.normal(0, 0.06, (height, width)), 0, 1)
        base = rng.uniform(40, 230, 3)
        pixels = base + (np.clip(base + rng.normal(0, 40, 3), 0, 255) - base) * share[..., None]
    else:
        import skimage.data

        source = getattr(skimage.data, name)()
        crop = int(min(min(source.shape), max(size) / rng.uniform(0.5, 1.5)))
        top, left = rng.integers(0, source.shape[0] - crop + 1), rng.integers(0, source.shape[1] - crop + 1)
        patch = Image.fromarray(source[top: top + crop, left: left + crop]).resize((max(size),) * 2, Image.Resampling.BICUBIC)
        lift = rng.uniform(0, 0.4)
        pixels = (lift + (1 - lift) * np.asarray(patch, np.float64)[:height, :width] / 255)[..., None] * rng.uniform(0.5, 1.0, 3) * 255
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def labels_of(model, files: list[str], conversion: str, options: DatasetOptions, jobs: int = 1):
    """``predict``'s labels and warnings for ``files``, read ``jobs`` at a time (each its own process)."""
    if jobs > 1:
        import concurrent.futures
        import multiprocessing

        chunks = [files[start: start + 50] for start in range(0, len(files), 50)]
        spawn = multiprocessing.get_context("spawn")  # not fork: JAX is running in this process
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_one_thread) as pool:
            items = [item for part in pool.map(_read, chunks, [conversion] * len(chunks), [options] * len(chunks))
                     for item in part]
    else:
        items = _read(files, conversion, options)
    results = predict(model, items)
    return np.array([result["label"] for result in results]), [result["warning"] for result in results]


def _read(files: list[str], conversion: str, options: DatasetOptions):
    return read_inputs(files, "auto", conversion, options=options)


def _one_thread():
    """A worker's numerical libraries on one thread each: the workers share the cores already (200 pictures
    on 2 cores, 2 jobs: 159 s with two threads each, 30 s with one)."""
    import sklearn.mixture  # noqa: F401  loaded first: the limit holds for the libraries loaded by then
    import threadpoolctl

    threadpoolctl.threadpool_limits(1)


def contrast_sweep(model, test, folder: Path, seed: int, count: int, jobs: int) -> None:
    """Accuracy of the new conversion when item and background are only a few grey levels apart."""
    chosen = np.random.default_rng([seed, 1]).choice(len(test.y_test), count, replace=False)
    raw = np.asarray(model.predict(test.x_test[chosen], verbose=0)).argmax(-1) == test.y_test[chosen]
    print(f"low contrast: a grey item on white, JPEG quality 75, {count} pictures per span; raw accuracy "
          f"on the same test images {raw.mean():.3f}; warned below {LOW_CONTRAST} levels")
    print(f"{'span':>5}  {'new':>6}  {'new-raw':>7}  {'warned':>6}")
    for span in (8, 16, 24, 32, 40, 48, 64, 96):
        files = []
        for number, index in enumerate(chosen):
            rng = np.random.default_rng([seed, 2, span, number])
            path = folder / f"contrast-{span}-{number:04d}.jpg"
            render(test.x_test[index], Scene((255, 255, 255), (255 - span,) * 3), rng).save(path, quality=75)
            files.append(str(path))
        labels, warnings = labels_of(model, files, "dataset", DatasetOptions(), jobs)
        accuracy = np.mean(labels == test.y_test[chosen])
        print(f"{span:>5}  {accuracy:6.3f}  {accuracy - raw.mean():+7.3f}  {np.mean([w is not None for w in warnings]):6.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run folder or .keras file (the tutorial model: fmnist train)")
    parser.add_argument("--per-kind", type=int, help="pictures per rendering kind (or contrast span); default "
                        "1000 (the plain kinds: all 10,000 test images, each once; --beyond separates each "
                        "picture twice, about 0.4 s a picture on one core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="pictures converted in this many processes at once (default: one per CPU)")
    table = parser.add_mutually_exclusive_group()
    table.add_argument("--contrast", action="store_true",
                       help="instead of the table, the low-contrast sweep behind the warning")
    table.add_argument("--beyond", action="store_true",
                       help="instead of the table, the kinds beyond plain backgrounds (textures, colours, tilts)")
    args = parser.parse_args()
    kinds = BEYOND if args.beyond else KINDS
    args.per_kind = args.per_kind or 1000
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if not 1 <= args.per_kind <= 10000 // len(kinds):
        parser.error(f"--per-kind must be between 1 and {10000 // len(kinds)} ({len(kinds)} kinds share the "
                     "10,000 test images)")

    started = time.perf_counter()
    model = load_model(args.model)
    test = data.load(None)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, {args.jobs} jobs; model {args.model}; seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="picture-robustness-") as folder:
        if args.contrast:
            contrast_sweep(model, test, Path(folder), args.seed, args.per_kind, args.jobs)
        elif args.beyond:
            kinds_table(model, test, Path(folder), args.seed, args.per_kind, args.jobs, BEYOND, BEYOND_VARIANTS, 0.05, 0.03)
        else:
            kinds_table(model, test, Path(folder), args.seed, args.per_kind, args.jobs, KINDS, VARIANTS, 0.02)
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


def kinds_table(model, test, folder: Path, seed: int, per_kind: int, jobs: int, names, variants: dict, goal: float,
                mean_goal: float | None = None) -> None:
    raw = np.asarray(model.predict(test.x_test, batch_size=1024, verbose=0)).argmax(-1) == test.y_test
    chosen = np.random.default_rng([seed, 0]).choice(len(test.y_test), len(names) * per_kind, replace=False)
    kinds = np.repeat(names, per_kind)
    started = time.perf_counter()
    files = write_pictures(folder, test.x_test[chosen], list(kinds), seed)
    seconds = {"rendering": time.perf_counter() - started}
    correct = {}
    for name, (conversion, options) in variants.items():
        started = time.perf_counter()
        labels, warnings = labels_of(model, files, conversion, options, jobs)
        correct[name] = labels == test.y_test[chosen]
        seconds[name] = time.perf_counter() - started
        if name == "new":
            warned = np.array([warning is not None for warning in warnings])
    print_table(names, kinds, raw[chosen], correct, warned, goal, mean_goal)
    print(f"\nraw accuracy on all {len(raw)} test images: {raw.mean():.4f}; {len(files)} pictures "
          f"({per_kind} per kind); seconds: " + ", ".join(f"{name} {value:.0f}" for name, value in seconds.items()))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def print_table(names, kinds: np.ndarray, raw: np.ndarray, correct: dict, warned: np.ndarray, goal: float,
                mean_goal: float | None = None) -> None:
    """Accuracy per kind and conversion; new-raw with its 95% interval; the goal: new >= raw - ``goal``
    on every kind, and on all of them together new >= raw - ``mean_goal`` (the same goal when None)."""
    columns = list(correct)
    mean_goal = goal if mean_goal is None else mean_goal
    within = f"within {goal * 100:.0f}" + (f" (all {mean_goal * 100:.0f})" if mean_goal != goal else "")
    print(f"{'kind':<15} {'n':>4} {'raw':>6} " + " ".join(f"{name:>11}" for name in columns)
          + f"  new-raw (95%)  {within}  warned")
    for kind in [*names, "all"]:
        rows = kinds == kind if kind != "all" else np.ones(len(kinds), bool)
        difference = correct["new"][rows].astype(float) - raw[rows]
        half = 1.96 * difference.std(ddof=1) / np.sqrt(rows.sum())  # paired: the same test images
        met = "met" if difference.mean() >= -(goal if kind != "all" else mean_goal) else "MISSED"
        print(f"{kind:<15} {rows.sum():>4} {raw[rows].mean():6.3f} "
              + " ".join(f"{correct[name][rows].mean():11.3f}" for name in columns)
              + f"  {difference.mean():+.3f} ± {half:.3f}  {met:>9}  {warned[rows].sum():>6}")


if __name__ == "__main__":
    sys.exit(main())
