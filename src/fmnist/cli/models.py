"""``fmnist evaluate``, ``fmnist predict``, ``fmnist export`` and ``fmnist serve``: saved models at work."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from fmnist.cli import common, report

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



def add_parsers(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="test metrics, per-class scores, confusion matrix and mistakes of a saved model",
        description="Load a model (.keras in safe mode, or .onnx through onnxruntime) and measure it on the raw "
        "test images; writes evaluation.json, confusion_matrix.png and mistakes.png beside the model.", epilog=common.EPILOG)
    evaluate.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a run folder, a .keras file or a .onnx file")
    evaluate.add_argument("--output-dir", metavar="FOLDER",
                          help="where to write the report (created if missing; default: beside the model)")
    common.data_options(evaluate)
    evaluate.set_defaults(handler=evaluate_command)

    predict = commands.add_parser(
        "predict", help="classify your own images (PNG, JPEG, .npy, IDX)", epilog=common.exit_codes("an input failed "
        "(its row says why; the others are predicted)"),
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
    predict.set_defaults(handler=predict_command)
    _export_parser(commands)
    _serve_parser(commands)


def evaluate_command(args) -> int:
    from fmnist.guard.safe_files import writable, write_error
    from fmnist.inference.evaluation import evaluate_report, format_per_class
    from fmnist.inference.load import load_model, model_path

    path = model_path(args.model)  # a study folder: its best model's run folder gets the evaluation
    model = load_model(path)  # a bad model file is reported before the data are read
    run_folder = path.parent
    folder = Path(args.output_dir) if args.output_dir else run_folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(f"--output-dir {folder}", error) from None
    # before any work: a read-only run folder is said now, not after the scores are computed
    writable(folder, "--output-dir" if args.output_dir else "", "" if args.output_dir else
             "; the report goes beside the model unless --output-dir names another folder")
    dataset = common.load_data(args)
    _same_data(run_folder, dataset)
    result = evaluate_report(model, folder, dataset.x_test, dataset.y_test)
    for page in result["reports"]:
        report.wrote(page)
    print(f"test loss {result['test_loss']:.4f} accuracy {result['test_accuracy']:.4f} ({len(dataset.y_test)} test "
          f"images of {dataset.source}{'' if dataset.verified else ', checksum not verified'})")
    print(format_per_class(result["per_class"]))
    print(f"files in {folder}: evaluation.json, confusion_matrix.png, mistakes.png "
          f"({result['mistakes_shown']} most confident mistakes)")
    return 0


def _same_data(run_folder: Path, dataset) -> None:
    """Warn when the run recorded other data than the data it is scored on."""
    from fmnist.errors import DataError, UsageError
    from fmnist.store.runs import read_config

    try:
        recorded = read_config(run_folder)["data"]
    except (DataError, UsageError):
        return  # a bare model file: nothing recorded to compare with
    if recorded.get("digests") and recorded["digests"] != dataset.digests:
        print(f"fmnist: warning: the model was trained on other data ({recorded.get('source')}) than the test set "
              f"scored here ({dataset.source})", file=sys.stderr)


def predict_command(args) -> int:
    from fmnist.errors import UsageError
    from fmnist.guard.safe_files import writable
    from fmnist.inference.load import load_model
    from fmnist.inference.predict import (
        SHEET_LIMIT,
        draw_sheet,
        predict,
        render,
        save_inputs,
    )
    from fmnist.inputs.read import read_inputs

    # The outputs are checked before any work, so that a typo costs nothing.
    folder, sheet = (Path(value) if value else None for value in (args.save_inputs, args.sheet))
    if folder and folder.exists() and not folder.is_dir():
        raise UsageError(f"--save-inputs {folder}: exists and is not a folder")
    if folder and folder.is_dir():
        writable(folder, "--save-inputs")
    if sheet and (sheet.suffix.lower() != ".png" or not sheet.parent.is_dir()):
        raise UsageError(f"--sheet {sheet}: give a .png file in an existing folder")
    if sheet:
        writable(sheet.parent, "--sheet")
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
                                 description=EXPORT_DESCRIPTION, epilog=common.exit_codes("the check failed"),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a run folder or a .keras file")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="default %(default)s")
    export.add_argument("--output", metavar="FILE.onnx", help="where to write (default: model.onnx beside the model)")
    common.data_options(export)
    export.set_defaults(handler=export_command)


SERVE_DESCRIPTION = """Serve a model over HTTP (Starlette on uvicorn). Routes:
  POST /predict  a PNG or JPEG (the body, or a multipart file field) or a JSON array of 28x28 raw
                 pixels (or N of them); answers what `fmnist predict --format json` prints.
                 ?invert=auto|yes|no&conversion=dataset|simple as predict's options; ?pixels=1 adds
                 the 28x28 image the model received.
  GET /health    status and the model served
  GET /          a page: drop a picture, see what the model saw, the class and the top 3
Bad input gets a 4xx status with {"error": "..."}. Ctrl-C or SIGTERM stops it: the requests in flight
finish, a second signal stops at once; exit 130 or 143 with one line."""


def _serve_parser(commands) -> None:
    from fmnist.serve import ServeConfig

    defaults = ServeConfig()
    serve = commands.add_parser("serve", help="serve a model over HTTP: POST /predict, a page at /",
                                description=SERVE_DESCRIPTION,
                                epilog=common.exit_codes(stopped="0 also when stopped by Ctrl-C/SIGTERM"),
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
    serve.set_defaults(handler=serve_command)


def export_command(args) -> int:
    from fmnist.guard.text import printable
    from fmnist.inference.export import export_onnx, export_paths

    source, path = export_paths(args.model, args.output)  # a typo costs nothing
    dataset = common.load_data(args)
    print(f"exporting {printable(str(source))} to {printable(str(path))}; verifying on {len(dataset.y_test):,} test "
          "images…", file=sys.stderr)
    result = export_onnx(source, dataset.x_test, path)  # the model resolved above (a study's best, said once)
    print(f"converter: {result.converter}")
    print(f"verified with {result.runtime} on {result.images:,} test images: same class for "
          f"{result.same_argmax:,} of {result.images:,}, max |p_onnx - p_keras| = {result.max_difference:.2e} "
          f"(limit 1e-05)")
    print(f"wrote {printable(str(result.path))} ({result.size_bytes / 1e6:.1f} MB) in {result.seconds:.1f}s")
    return 0


def serve_command(args) -> int:
    from fmnist.errors import UsageError
    from fmnist.inference.load import model_path
    from fmnist.serve import ServeConfig

    if not math.isfinite(args.max_body_mb):  # round() cannot take NaN or infinity
        raise UsageError(f"--max-body-mb {args.max_body_mb}: must be a finite number of megabytes")
    config = ServeConfig(host=args.host, port=args.port, max_body_bytes=round(args.max_body_mb * 2**20),
                         max_pixels=args.max_pixels, timeout=args.timeout, access_log=args.access_log)
    path = model_path(args.model)  # a missing or damaged file is said before anything starts
    from fmnist.serve.server import is_loopback, serve

    def announce(url: str) -> None:
        print(f"fmnist: serving {path} at {url} (Ctrl-C stops)", flush=True)
        if not is_loopback(config.host):
            print("fmnist: note: reachable from other machines; there is no authentication and no TLS", flush=True)

    serve(None, path, config, announce)  # loads the model with the signals already its own; stops by Interrupted
    return 1  # not reached: serve() returns only by raising
