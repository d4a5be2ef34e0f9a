"""What the commands share: the data and training options, reading what was named, the epilog."""

from __future__ import annotations

import argparse

STOPPED = "130/143 stopped by Ctrl-C/SIGTERM"
RESUMABLE = f"{STOPPED} (resumable with --resume)"


def exit_codes(failed: str = "the work failed", stopped: str = STOPPED) -> str:
    """The exit codes, with what 1 means for the command and what a signal ends with."""
    import textwrap

    return textwrap.fill(f"exit codes: 0 success, 1 {failed}, 2 bad usage or unusable data, {stopped}, "
                         "141 the output pipe was closed (e.g. | head)", 100)


EPILOG = exit_codes()


def data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", metavar="FOLDER",
        help="folder with the four Fashion-MNIST .gz files (default: $FMNIST_DATA_DIR, the Keras cache, "
        "then Debian's /usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument(
        "--skip-checksum", action="store_true",
        help="accept IDX files whose content differs from the Fashion-MNIST release (structure is still checked)",
    )


def train_options(parser: argparse.ArgumentParser, normalization: bool = True, engine: bool = True) -> None:
    """The settings of TrainConfig. Defaults are None here so that `--resume` knows what was named."""
    from fmnist.config import ENGINES, OPTIMIZERS, TrainConfig
    from fmnist.normalization import METHODS

    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, help=f"epochs to train (default {defaults.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    parser.add_argument("--learning-rate", type=float, help=f"learning rate (default {defaults.learning_rate})")
    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS),
                        help=f"default {defaults.optimizer}: " + "; ".join(f"{k}: {v.summary}" for k, v in OPTIMIZERS.items()))
    parser.add_argument("--seed", type=int, help=f"initialization and shuffle seed (default {defaults.seed})")
    if normalization:
        parser.add_argument(
            "--normalization", metavar="METHOD",
            help=f"input normalization, fitted on the training split and saved inside the model "
            f"(default {defaults.normalization}): {', '.join(METHODS)}; see the list below",
        )
    parser.add_argument("--valid-size", type=int,
                        help=f"the first N training images are validation (default {defaults.valid_size})")
    if engine:
        parser.add_argument("--engine", choices=ENGINES,
                            help="fused: one compiled program per epoch (JAX); keras: model.fit; auto: fused on JAX (default)")
    data_options(parser)


SETTINGS = ("epochs", "batch_size", "learning_rate", "optimizer", "seed", "normalization", "valid_size", "engine",
            "data_dir", "early_stopping", "monitor")


FLAGS = {"verify": "--skip-checksum", "max_body_bytes": "--max-body-mb"}  # the settings not named --<field>


def option(field: str) -> str:
    """The option that sets ``field`` (``learning_rate`` -> ``--learning-rate``)."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def render(error) -> str:
    """An error's message as the command line says it: the setting it starts with becomes its option
    (``epochs 0: …`` -> ``--epochs 0: …``); a message about a file that a setting would help with ends
    by naming the option (``…, turn the check off (--skip-checksum)``)."""
    text, field = str(error), getattr(error, "field", None)
    if not field:
        return text
    if text == field or text.startswith((f"{field} ", f"{field}:")):
        return option(field) + text[len(field):]
    return f"{text} ({option(field)})"


def given(args) -> dict:
    """The TrainConfig settings named on the command line."""
    given = {key: getattr(args, key) for key in SETTINGS if getattr(args, key, None) is not None}
    if args.skip_checksum:
        given["verify"] = False
    return given


def methods_epilog() -> str:
    from fmnist.normalization import METHODS

    width = max(map(len, METHODS))
    lines = [f"  {name:{width}}  {method.summary}" for name, method in METHODS.items()]
    return "normalization methods:\n" + "\n".join(lines) + "\n\n" + exit_codes("training failed (diverged)", RESUMABLE)


def split(text: str, option: str, convert=str) -> tuple:
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = convert(part)
        except ValueError:
            raise usage(f"{option} {text!r}: {part!r} is not a number") from None
        mantissa = part.lower().split("e")[0]
        if convert is float and (value == 0 and any(digit in mantissa for digit in "123456789")
                                 or value in (float("inf"), float("-inf")) and "inf" not in part.lower()):
            raise usage(f"{option} {text!r}: {part!r} is beyond the range of a float")  # 1e-400 or 1e999, as typed
        values.append(value)
    return tuple(values)


def usage(message: str):
    from fmnist.errors import UsageError

    return UsageError(message)


def load_data(args):
    from fmnist import data

    return data.load(args.data_dir, verify=not args.skip_checksum)
