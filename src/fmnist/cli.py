"""The command line: parses arguments and calls one library function per command.

Exit codes: 0 success; 1 the work failed (some inputs rejected, training diverged); 2 bad usage or
unusable data. Errors are one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fmnist import __version__
from fmnist.runtime import stop_on_signals, use_compilation_cache, use_cpu_devices

PREDICT_DESCRIPTION = """Classify images with a saved model (loaded in safe mode).

Pictures (PNG, JPEG) are turned upright (EXIF), read as a page shows them (16-bit scaled,
transparency on white) and converted per --conversion:
  dataset  Fashion-MNIST's own conversion (Xiao et al. 2017, section 2), the default: trim the
           edges within 5% of the corners' colour, grey, negate when the item is darker than that
           colour, stretch it to 0 and the item to 255 (as every training image is), longest edge
           to 28 by area averaging, sharpen (Gaussian, radius and sigma 1), centre on black.
  simple   the conversion predict used before: grey, negate when the outermost pixel ring is
           light, longest side to 28, centred on black; no trim, no stretch, no sharpening.
A 28x28 picture is taken as already converted (only grey and --invert). Arrays (.npy) and IDX
files are used as they are. A bad input gets an error row, the others are still predicted; a
doubtful conversion (e.g. low contrast) gets a warning."""

EPILOG = "exit codes: 0 success, 1 the work failed (e.g. training diverged), 2 bad usage or unusable data"


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", metavar="FOLDER",
        help="folder with the four Fashion-MNIST .gz files (default: $FMNIST_DATA_DIR, the Keras cache, "
        "then Debian's /usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument(
        "--skip-checksum", action="store_true",
        help="accept IDX files whose content differs from the Fashion-MNIST release (structure is still checked)",
    )


def _train_options(parser: argparse.ArgumentParser, normalization: bool = True, engine: bool = True) -> None:
    """The settings of TrainConfig. Defaults are None here so that `--resume` knows what was named."""
    from fmnist.config import ENGINES, OPTIMIZERS, TrainConfig
    from fmnist.normalization import METHODS

    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, help=f"epochs to train (default {defaults.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    parser.add_argument("--learning-rate", type=float, help=f"learning rate (default {defaults.learning_rate})")
    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS),
                        help=f"default {defaults.optimizer}: " + "; ".join(f"{k}: {v}" for k, v in OPTIMIZERS.items()))
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
    _data_options(parser)


SETTINGS = ("epochs", "batch_size", "learning_rate", "optimizer", "seed", "normalization", "valid_size", "engine",
            "data_dir")


def _option(key: str) -> str:
    return "--skip-checksum" if key == "verify" else "--" + key.replace("_", "-")


def _given(args) -> dict:
    """The TrainConfig settings named on the command line."""
    given = {key: getattr(args, key) for key in SETTINGS if getattr(args, key, None) is not None}
    if args.skip_checksum:
        given["verify"] = False
    return given


def _methods_epilog() -> str:
    from fmnist.normalization import METHODS

    width = max(map(len, METHODS))
    lines = [f"  {name:{width}}  {method.summary}" for name, method in METHODS.items()]
    return "normalization methods:\n" + "\n".join(lines) + "\n\n" + EPILOG


SWEEP_DESCRIPTION = """Train every normalization method x learning rate x optimizer x seed and answer: does
normalization help when every method gets its own best learning rate?

Members that share an optimizer train together in one compiled program (jax.vmap over the member
axis, sharded over every device: GPUs, or one CPU device per core; several hosts join with
--coordinator-address/--num-processes/--process-id). The best rate of each method is chosen on
validation accuracy, and reported on test accuracy with a paired t-test (paired by seed) against
the baseline at its own best rate.

Writes members.csv, history.csv, summary.csv, best.csv, heatmap-<optimizer>.png,
curves-<optimizer>.png, and a run folder with the model of each method x optimizer at its best rate
(--save-models)."""


def _sweep_parser(commands) -> None:
    from fmnist.config import OPTIMIZERS, SAVE_MODELS, SweepConfig

    defaults = SweepConfig()
    sweep = commands.add_parser("sweep", help="methods x learning rates x optimizers x seeds, many models at once",
                                description=SWEEP_DESCRIPTION, epilog=_methods_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--methods", help=f"comma-separated normalization methods (default all: {','.join(defaults.methods)})")
    sweep.add_argument("--learning-rates", metavar="RATES",
                       help="comma-separated learning rates (default " + ",".join(f"{r:g}" for r in defaults.learning_rates) + ")")
    sweep.add_argument("--optimizers", help=f"comma-separated, from {', '.join(OPTIMIZERS)} (default {','.join(defaults.optimizers)})")
    sweep.add_argument("--seeds", type=int, help=f"seeds per cell: --seed, --seed+1, … (default {defaults.seeds})")
    sweep.add_argument("--seed", type=int, help=f"the first seed (default {defaults.seed})")
    sweep.add_argument("--epochs", type=int, help=f"default {defaults.epochs}")
    sweep.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    sweep.add_argument("--valid-size", type=int, help=f"the first N training images are validation (default {defaults.valid_size})")
    sweep.add_argument("--baseline", help="method the others are tested against (default standard, or the first "
                       "method when standard is not among them)")
    sweep.add_argument("--save-models", choices=SAVE_MODELS,
                       help="best: model.keras of each method x optimizer at its best rate, first seed (default); "
                       "all: every member; none")
    sweep.add_argument("--members-per-program", type=int, metavar="N",
                       help="at most N members in one compiled program (default: as many as fit in half the free memory)")
    _data_options(sweep)
    sweep.add_argument("--output-dir", metavar="FOLDER", help="sweep folder (new or empty; default runs/<UTC time>-sweep)")
    sweep.add_argument("--resume", metavar="FOLDER", help="finish an interrupted sweep with its recorded settings")
    hosts = sweep.add_argument_group("several processes or hosts (jax.distributed; every process runs the same command)")
    hosts.add_argument("--coordinator-address", metavar="HOST:PORT",
                       help="process 0's address (default $JAX_COORDINATOR_ADDRESS, or Slurm/Open MPI detection)")
    hosts.add_argument("--num-processes", type=int, metavar="N", help="default $JAX_NUM_PROCESSES")
    hosts.add_argument("--process-id", type=int, metavar="K", help="0 .. N-1 (default $JAX_PROCESS_ID)")


SWEEP_SETTINGS = ("methods", "learning_rates", "optimizers", "seeds", "seed", "epochs", "batch_size", "valid_size",
                  "baseline", "save_models", "members_per_program", "data_dir")


def _split(text: str, option: str, convert=str) -> tuple:
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(convert(part))
        except ValueError:
            raise _usage(f"{option} {text!r}: {part!r} is not a number") from None
    return tuple(values)


def _usage(message: str):
    from fmnist.errors import UsageError

    return UsageError(message)


def _sweep(args) -> int:
    from fmnist.config import SweepConfig
    from fmnist.runs import read_study
    from fmnist.runtime import is_main_process, join_processes
    from fmnist.sweep import sweep
    from fmnist.tables import answer, format_best

    join_processes(args.coordinator_address, args.num_processes, args.process_id)
    named = {key: getattr(args, key) for key in SWEEP_SETTINGS if getattr(args, key) is not None}
    for key, convert in (("methods", str), ("optimizers", str), ("learning_rates", float)):
        if key in named:
            named[key] = _split(named[key], _option(key), convert)
    if args.skip_checksum:
        named["verify"] = False
    if args.resume:
        if args.output_dir:
            raise _usage("--resume names the sweep folder; --output-dir cannot be used with it")
        recorded = {key: tuple(value) if isinstance(value, list) else value
                    for key, value in read_study(args.resume, "sweep")["settings"].items()}
        changed = [key for key, value in named.items() if key != "data_dir" and value != recorded[key]]
        if changed:
            key = changed[0]
            option = "--skip-checksum" if key == "verify" else f"{_option(key)} {getattr(args, key)}"
            raise _usage(f"--resume {args.resume}: {option} differs from the sweep's {key} {recorded[key]!r}; "
                         "resuming refuses changes that alter the result")
        config = SweepConfig(**recorded | {key: named[key] for key in ("data_dir",) if key in named})
    else:
        config = SweepConfig(**named)
    log = print if is_main_process() else (lambda *_: None)
    with stop_on_signals() as should_stop:
        result, best = sweep(config, args.resume or args.output_dir, resume=bool(args.resume), log=log,
                             should_stop=should_stop)
    if is_main_process():
        print()
        print(format_best(best))
        print("\n±: half-width of the 95% Student-t interval across seeds; best rate: the highest mean final "
              "val_accuracy among the rates where no seed diverged")
        for line in answer(best):
            print(f"answer: {line}")
        print(f"files in {result.folder}: members.csv, history.csv, summary.csv, best.csv, "
              + ", ".join(f"heatmap-{o}.png, curves-{o}.png" for o in config.optimizers))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmnist",
        description="Train Fashion-MNIST classifiers with correct input normalization "
        "(reproduces the TF2/Keras normalization tutorial).",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"fmnist {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train the tutorial's model and write a run folder",
                                epilog=_methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Train the tutorial's MLP; writes config.json, history.csv, "
                                "metrics.json, model.keras and learning_curves.png into the run folder.")
    _train_options(train)
    train.add_argument("--output-dir", metavar="FOLDER", help="run folder (new or empty; default runs/<UTC time>-<name>)")
    train.add_argument("--name", default="tutorial", help="run name, the run folder's suffix (default %(default)s)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue RUN_DIR after its last checkpointed epoch with its recorded settings "
                       "(--epochs may be raised; options that change the result are refused)")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")

    compare = commands.add_parser(
        "compare", help="train methods x seeds and compare them (table, curves, paired test)",
        description="Train each normalization method with several seeds at one learning rate and optimizer "
        "(a sweep with one cell per method: its members train together in one compiled program); writes "
        "runs.csv, summary.csv, val_accuracy.png, loss.png and a run folder with the model of each member.",
        epilog=_methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("--methods", help=f"comma-separated normalization methods (default {COMPARE_DEFAULTS['methods']})")
    compare.add_argument("--seeds", type=int, help=f"seeds per method: --seed, --seed+1, … (default {COMPARE_DEFAULTS['seeds']})")
    compare.add_argument("--baseline", help="method the others are tested against (default standard, or the first "
                         "method when standard is not among them)")
    _train_options(compare, normalization=False, engine=False)
    compare.add_argument("--output-dir", metavar="FOLDER", help="comparison folder (new or empty; default runs/<UTC time>-compare)")
    compare.add_argument("--resume", metavar="FOLDER",
                         help="finish an interrupted comparison with its recorded settings (other options are not allowed)")

    _sweep_parser(commands)

    evaluate = commands.add_parser(
        "evaluate", help="test metrics, per-class scores, confusion matrix and mistakes of a saved model",
        description="Load a model (.keras in safe mode, or .onnx through onnxruntime) and measure it on the raw "
        "test images; writes evaluation.json, confusion_matrix.png and mistakes.png beside the model.", epilog=EPILOG)
    evaluate.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a run folder, a .keras file or a .onnx file")
    _data_options(evaluate)

    predict = commands.add_parser(
        "predict", help="classify your own images (PNG, JPEG, .npy, IDX)", epilog=EPILOG + "; exit 1 if any input failed",
        description=PREDICT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("model", metavar="MODEL",
                         help="a run folder, a .keras file, or a .onnx file (run by onnxruntime: no Keras, a faster start)")
    predict.add_argument("inputs", metavar="INPUT", nargs="+",
                         help="PNG/JPEG files, folders of them, .npy arrays (28x28 or Nx28x28), IDX image files")
    predict.add_argument("--format", choices=("table", "json", "csv"), default="table", help="default %(default)s")
    predict.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                         help="make dark-on-light pictures light-on-dark like Fashion-MNIST; auto: when the item "
                         "is darker than the trimmed-away colour (simple: when the mean of the outermost pixel "
                         "ring is above 127.5). Default %(default)s")
    predict.add_argument("--conversion", choices=("dataset", "simple"), default="dataset",
                         help="how pictures become 28x28 (see above). Default %(default)s")
    predict.add_argument("--save-inputs", metavar="DIR",
                         help="write each converted 28x28 image, what the model saw, as DIR/NNNN-NAME.png "
                         "(DIR is created if missing)")
    predict.add_argument("--sheet", metavar="FILE.png",
                         help="draw a contact sheet: each picture beside its 28x28 input, the predicted class, "
                         "the top 3 and any warning (the first 100 inputs)")

    _export_parser(commands)
    _serve_parser(commands)

    data = commands.add_parser("data", help="inspect or fetch the dataset")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    show = data_commands.add_parser("show", help="save a PNG grid of sample images per class", epilog=EPILOG)
    show.add_argument("--output", default="fashion-mnist-samples.png", help="PNG to write (default %(default)s)")
    show.add_argument("--per-class", type=int, default=8, help="images per class (default %(default)s)")
    show.add_argument("--split", choices=("train", "test"), default="train", help="default %(default)s")
    _data_options(show)
    info = data_commands.add_parser("info", help="where the data come from, counts, pixel statistics", epilog=EPILOG)
    _data_options(info)
    download = data_commands.add_parser("download", help="fetch the files from the upstream mirror into the Keras cache")
    download.add_argument("--cache-dir", metavar="FOLDER", help="default $KERAS_HOME/datasets/fashion-mnist")
    for command in (train, compare, commands.choices["sweep"], evaluate, predict, commands.choices["export"],
                    commands.choices["serve"], show, info, download):  # `fmnist train --debug` works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def _train(args) -> int:
    from fmnist.config import TrainConfig
    from fmnist.errors import UsageError
    from fmnist.progress import Progress
    from fmnist.runs import resume_config
    from fmnist.train import train

    if args.resume:
        if args.output_dir:
            raise UsageError("--resume names the run folder; --output-dir cannot be used with it")
        config, output_dir = resume_config(args.resume, _given(args)), args.resume
    else:
        config, output_dir = TrainConfig(**_given(args), name=args.name), args.output_dir
    with stop_on_signals() as should_stop:
        result = train(config, output_dir, resume=bool(args.resume), should_stop=should_stop,
                       progress=Progress(config.epochs, quiet=args.quiet))
    last = result.history[-1]
    print(
        f"done: epoch {last['epoch']} val_accuracy {last['val_accuracy']:.4f}; "
        f"test loss {result.metrics['test_loss']:.4f} accuracy {result.metrics['test_accuracy']:.4f}; "
        f"{result.metrics['wall_seconds']:.1f}s; files in {result.run_dir}"
    )
    return 0


COMPARE_DEFAULTS = {"methods": "none,rescale,standard,per-pixel", "seeds": 3, "baseline": None}


def _compare(args) -> int:
    from fmnist.compare import compare, format_table, parse_methods, resume_arguments
    from fmnist.config import TrainConfig
    from fmnist.errors import UsageError

    named = _given(args) | {key: getattr(args, key) for key in COMPARE_DEFAULTS if getattr(args, key) is not None}
    if args.resume:
        extra = [_option(key) for key in named] + (["--output-dir"] if args.output_dir else [])
        if extra:
            raise UsageError(f"--resume {args.resume}: the comparison's recorded settings are used; "
                             f"drop {', '.join(extra)}")
        recorded = resume_arguments(args.resume)
        methods, seeds, baseline, config = (recorded[key] for key in ("methods", "seeds", "baseline", "config"))
    else:
        options = COMPARE_DEFAULTS | named
        methods, seeds, baseline = parse_methods(options["methods"]), options["seeds"], options["baseline"]
        config = TrainConfig(**_given(args))
    with stop_on_signals() as should_stop:
        result = compare(methods, seeds, config, args.resume or args.output_dir, baseline,
                         resume=bool(args.resume), should_stop=should_stop)
    print()
    print(format_table(result.summary))
    print(f"\n±: half-width of the 95% Student-t interval across seeds; vs baseline: mean paired difference in "
          f"test accuracy against {result.summary[0]['baseline']}, paired by seed, with the paired t-test's p-value")
    print(f"files in {result.folder}: runs.csv, summary.csv, val_accuracy.png, loss.png, one folder per run")
    return 0


def _load_data(args):
    from fmnist import data

    return data.load(args.data_dir, verify=not args.skip_checksum)


def _evaluate(args) -> int:
    from fmnist.evaluation import evaluate_report, format_per_class, load_model

    model = load_model(args.model)  # a bad model file is reported before the data are read
    dataset = _load_data(args)
    target = Path(args.model)
    folder = target if target.is_dir() else target.parent  # the run folder
    result = evaluate_report(model, folder, dataset.x_test, dataset.y_test)
    print(f"test loss {result['test_loss']:.4f} accuracy {result['test_accuracy']:.4f} ({len(dataset.y_test)} images)")
    print(format_per_class(result["per_class"]))
    print(f"files in {folder}: evaluation.json, confusion_matrix.png, mistakes.png "
          f"({result['mistakes_shown']} most confident mistakes)")
    return 0


def _predict(args) -> int:
    from fmnist.errors import UsageError
    from fmnist.evaluation import load_model
    from fmnist.images import read_inputs
    from fmnist.predict import SHEET_LIMIT, draw_sheet, predict, render, save_inputs

    # The outputs are checked before any work, so that a typo costs nothing.
    folder, sheet = (Path(value) if value else None for value in (args.save_inputs, args.sheet))
    if folder and folder.exists() and not folder.is_dir():
        raise UsageError(f"--save-inputs {folder}: exists and is not a folder")
    if sheet and (sheet.suffix.lower() != ".png" or not sheet.parent.is_dir()):
        raise UsageError(f"--sheet {sheet}: give a .png file in an existing folder")
    model = load_model(args.model)
    items = read_inputs(args.inputs, args.invert, args.conversion, previews=SHEET_LIMIT if sheet else 0)
    results = predict(model, items)
    print(render(results, args.format))
    if folder:
        print(f"fmnist: wrote {save_inputs(items, folder)} converted inputs into {folder}", file=sys.stderr)
    if sheet:
        print(f"fmnist: wrote {sheet} ({draw_sheet(items, results, sheet)} of {len(items)} inputs)", file=sys.stderr)
    failed = sum(result["error"] is not None for result in results)
    if failed:
        print(f"fmnist: {failed} of {len(results)} inputs failed", file=sys.stderr)
    return 1 if failed else 0


EXPORT_DESCRIPTION = """Write a model as ONNX (model.onnx beside model.keras): raw uint8 pixels (batch, 28, 28) in,
probabilities (batch, 10) out, the normalization inside. Converted by Keras's own model.export
(jax2onnx on the JAX backend, no TensorFlow), then verified with onnxruntime against the Keras model on
the 10,000 test images: the same class for every image and max |p_onnx - p_keras| <= 1e-5, or nothing
is written (exit 1)."""


def _export_parser(commands) -> None:
    export = commands.add_parser("export", help="write the model as ONNX, verified with onnxruntime",
                                 description=EXPORT_DESCRIPTION, epilog=EPILOG + "; exit 1 if the check fails",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a run folder or a .keras file")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="default %(default)s")
    export.add_argument("--output", metavar="FILE.onnx", help="where to write (default: model.onnx beside the model)")
    _data_options(export)


SERVE_DESCRIPTION = """Serve a model over HTTP (Starlette on uvicorn). Routes:
  POST /predict  a PNG or JPEG (the body, or a multipart file field) or a JSON array of 28x28 raw
                 pixels (or N of them); answers what `fmnist predict --format json` prints.
                 ?invert=auto|yes|no&conversion=dataset|simple as predict's options; ?pixels=1 adds
                 the 28x28 image the model received.
  GET /health    status and the model served
  GET /          a page: drop a picture, see what the model saw, the class and the top 3
Bad input gets a 4xx status with {"error": "..."}. Ctrl-C or SIGTERM stops it (exit 0)."""


def _serve_parser(commands) -> None:
    from fmnist.serve import ServeConfig

    defaults = ServeConfig()
    serve = commands.add_parser("serve", help="serve a model over HTTP: POST /predict, a page at /",
                                description=SERVE_DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("model", metavar="MODEL", help="a run folder, a .keras file or a .onnx file")
    serve.add_argument("--host", default=defaults.host,
                       help="address to listen on (default %(default)s: this machine only; 0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=defaults.port, help="default %(default)s; 0 picks a free port")
    serve.add_argument("--max-body-mb", type=float, default=defaults.max_body_bytes / 2**20, metavar="MB",
                       help="largest request body, refused unread beyond it (default %(default)g)")
    serve.add_argument("--max-pixels", type=int, default=defaults.max_pixels, metavar="N",
                       help="largest picture, from its header before decoding (default %(default)s)")
    serve.add_argument("--timeout", type=float, default=defaults.timeout, metavar="SECONDS",
                       help="for a request's headers and for its body (default %(default)g)")
    serve.add_argument("--access-log", action="store_true", help="log one line per request")


def _export(args) -> int:
    from fmnist.export import export_onnx, export_paths

    source, path = export_paths(args.model, args.output)  # a typo costs nothing
    dataset = _load_data(args)
    print(f"exporting {source} to {path}; verifying on {len(dataset.y_test):,} test images…", file=sys.stderr)
    result = export_onnx(args.model, dataset.x_test, args.output)
    print(f"converter: {result.converter}")
    print(f"verified with {result.runtime} on {result.images:,} test images: same class for "
          f"{result.same_argmax:,} of {result.images:,}, max |p_onnx - p_keras| = {result.max_difference:.2e} "
          f"(limit 1e-05)")
    print(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB) in {result.seconds:.1f}s")
    return 0


SERVE_OPTIONS = {"max_body_bytes": "--max-body-mb", "max_pixels": "--max-pixels", "port": "--port", "timeout": "--timeout"}


def _serve(args) -> int:
    from fmnist.errors import UsageError
    from fmnist.evaluation import load_model, model_path
    from fmnist.serve import ServeConfig

    try:
        config = ServeConfig(host=args.host, port=args.port, max_body_bytes=round(args.max_body_mb * 2**20),
                             max_pixels=args.max_pixels, timeout=args.timeout, access_log=args.access_log)
    except ValueError as error:  # "max_pixels must be …": name the option
        field = str(error).split()[0]
        raise UsageError(f"{SERVE_OPTIONS.get(field, field)}: {error}") from None
    path = model_path(args.model)
    model = load_model(path)
    from fmnist.serve.server import is_loopback, serve

    def announce(url: str) -> None:
        print(f"fmnist: serving {path} at {url} (Ctrl-C stops)", flush=True)
        if not is_loopback(config.host):
            print("fmnist: note: reachable from other machines; there is no authentication and no TLS", flush=True)

    stopped_by = serve(model, path, config, announce)
    print(f"fmnist: stopped serving ({stopped_by})", flush=True)
    return 0


def _data(args) -> int:
    from fmnist import data

    if args.data_command == "download":
        print(f"downloaded and verified: {data.download(args.cache_dir)}")
        return 0
    if args.data_command == "show":
        from fmnist.errors import UsageError
        from fmnist.plots import plot_samples

        if not 1 <= args.per_class <= 50:
            raise UsageError(f"--per-class {args.per_class}: must be between 1 and 50")
        dataset = _load_data(args)
        images, labels = (dataset.x_train, dataset.y_train) if args.split == "train" else (dataset.x_test, dataset.y_test)
        plot_samples(images, labels, Path(args.output), args.per_class)
        print(f"wrote {args.output}")
        return 0
    info = data.describe(_load_data(args))
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key + ':':{width + 1}} {value:.4f}" if isinstance(value, float) else f"{key + ':':{width + 1}} {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # The backend and JAX's settings are chosen before anything imports Keras.
    os.environ.setdefault("KERAS_BACKEND", "jax")
    use_compilation_cache()
    args = build_parser().parse_args(argv)
    if args.command in ("sweep", "compare"):
        use_cpu_devices()  # members are sharded over the devices: one per core on the CPU
    from fmnist.errors import FmnistError

    handlers = {"train": _train, "compare": _compare, "sweep": _sweep, "evaluate": _evaluate, "predict": _predict,
                "export": _export, "serve": _serve, "data": _data}
    try:
        return handlers[args.command](args)
    except FmnistError as error:
        if args.debug:
            raise
        print(f"fmnist: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("fmnist: interrupted", file=sys.stderr)
        return 130
