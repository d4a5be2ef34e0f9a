"""``fmnist data show|info|download``."""

from __future__ import annotations

from pathlib import Path

from fmnist.cli import common


def add_parsers(commands) -> None:
    data = commands.add_parser("data", help="inspect or fetch the dataset", epilog=common.EPILOG,
                               description="Inspect the Fashion-MNIST files fmnist uses, or fetch them.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    show = data_commands.add_parser("show", help="save a PNG grid of sample images per class", epilog=common.EPILOG,
                                    description="Draw the first --per-class images of each class of a split as one "
                                    "PNG grid (a row per class), to see what the data look like.")
    show.add_argument("--output", help="PNG to write (default runs/samples-<split>.png, beside the runs)")
    show.add_argument("--per-class", type=int, default=8, help="images per class (default %(default)s)")
    show.add_argument("--split", choices=("train", "test"), default="train", help="default %(default)s")
    common.data_options(show)
    info = data_commands.add_parser("info", help="where the data come from, counts, pixel statistics", epilog=common.EPILOG,
                                    description="Find and verify the data (the search order is under --data-dir), "
                                    "then print the folder used, whether its content matched the Fashion-MNIST "
                                    "release, the image counts, the pixel range, mean and std (the tutorial's "
                                    "step 3) and the images per class.")
    common.data_options(info)
    download = data_commands.add_parser(
        "download", help="fetch the files from the upstream mirror into the Keras cache", epilog=common.EPILOG,
        description="Download the four files from the mirror Keras uses, check the SHA-256 of their decompressed "
        "content and move them into the cache ($KERAS_HOME/datasets/fashion-mnist); a failure leaves the cache as "
        "it was. The only network access fmnist makes.")
    download.add_argument("--cache-dir", metavar="FOLDER", help="default $KERAS_HOME/datasets/fashion-mnist")
    data.set_defaults(handler=data_command)


def data_command(args) -> int:
    from fmnist import data

    if args.data_command == "download":
        print(f"downloaded and verified: {data.download(args.cache_dir)}")
        return 0
    if args.data_command == "show":
        from fmnist.errors import UsageError
        from fmnist.guard.safe_files import writable
        from fmnist.reporting.plots import plot_samples

        if not 1 <= args.per_class <= 50:
            raise UsageError(f"--per-class {args.per_class}: must be between 1 and 50")
        output = Path(args.output if args.output is not None else f"runs/samples-{args.split}.png")
        if output.suffix.lower() != ".png":
            raise UsageError(f"--output {args.output!r}: give a .png file")
        if args.output is None:
            output.parent.mkdir(exist_ok=True)  # runs/, where train writes too
        if not output.parent.is_dir():
            raise UsageError(f"--output {output}: give a .png file in an existing folder")
        writable(output.parent, "--output")  # before the data are read
        dataset = common.load_data(args)
        images, labels = (dataset.x_train, dataset.y_train) if args.split == "train" else (dataset.x_test, dataset.y_test)
        plot_samples(images, labels, output, args.per_class)
        print(f"wrote {output}")
        return 0
    info = data.describe(common.load_data(args))
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key + ':':{width + 1}} {value:.4f}" if isinstance(value, float) else f"{key + ':':{width + 1}} {value}")
    return 0
