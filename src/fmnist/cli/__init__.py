"""The command line: parses arguments and calls one library function per command.

Each module adds its commands' parsers with a ``handler``; ``main`` sets up the process (the backend
before Keras is imported, JAX's caches and devices), runs the handler and maps library errors to one
line and an exit code: 0 success; 1 the work failed (some inputs rejected, training diverged); 2 bad
usage or unusable data; 130/143 stopped by SIGINT/SIGTERM. ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from fmnist.runtime import use_compilation_cache, use_cpu_devices, versions

MANY_MODELS = ("sweep", "compare")  # members are sharded over the devices: one per core on the CPU


def build_parser() -> argparse.ArgumentParser:
    from fmnist.cli import common, dataset, models, report, training

    parser = argparse.ArgumentParser(
        prog="fmnist",
        description="Train Fashion-MNIST classifiers with correct input normalization "
        "(reproduces the TF2/Keras normalization tutorial).",
        epilog=common.exit_codes(stopped=f"{common.STOPPED} (train, compare and sweep resume with --resume)"),
    )
    parser.add_argument("--version", action=_Versions,
                        help="print the versions of fmnist, Python and the libraries it trains with, and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (training, models, dataset, report):
        module.add_parsers(commands)
    for command in _leaves(parser):  # `fmnist train --debug` works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser




class _Versions(argparse.Action):
    """``--version``: one line per library, unwrapped."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(versions())
        parser.exit()


def _leaves(parser: argparse.ArgumentParser):
    """The parsers that take options: every command, and each action of a command that has actions."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for child in action.choices.values():
            yield from (_leaves(child) if child._subparsers else [child])


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the `fmnist` command itself, not a call from Python (tests)
        import fmnist.runtime

        fmnist.runtime.PROCESS_ENTRY = True
    try:
        return _main(argv)
    except BrokenPipeError:
        # `fmnist predict … | head -1`: the reader has gone. Exit quietly as Unix tools do (128 + SIGPIPE),
        # and point stdout at /dev/null so that the interpreter's final flush does not complain again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141


def _main(argv: list[str] | None) -> int:
    from fmnist.cli import common
    from fmnist.errors import FmnistError
    from fmnist.guard.text import printable

    args = None
    try:
        # The backend and JAX's settings are chosen before anything imports Keras.
        os.environ.setdefault("KERAS_BACKEND", "jax")
        use_compilation_cache()
        args = build_parser().parse_args(argv)
        if args.command in MANY_MODELS:
            use_cpu_devices()
        return args.handler(args)
    except FmnistError as error:
        if getattr(args, "debug", False):
            raise
        print(f"fmnist: error: {printable(common.render(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("fmnist: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except OSError as error:  # a file the library did not expect to fail (a full disk, a vanished folder)
        if getattr(args, "debug", False):
            raise
        from fmnist.guard.safe_files import FULL

        where = f"{error.filename}: " if error.filename else ""
        print(f"fmnist: error: {printable(where + (error.strerror or str(error)).lower())}", file=sys.stderr)
        return 1 if error.errno in FULL else 2
