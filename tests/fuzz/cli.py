"""The fuzzer's command line: its options, the surface chosen by ``--surface``, and one JSON line printed
(exit 1 when a case crashed). ``tests/fuzz_inputs.py`` runs it; its help is the package's docstring.
"""

from __future__ import annotations

import argparse
import json
import os

import fuzz
from fuzz.folders import fuzz_folders
from fuzz.http_requests import fuzz_http
from fuzz.inputs import fuzz_inputs


def main() -> int:
    parser = argparse.ArgumentParser(description=fuzz.__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--inputs", type=int, help="stop after this many inputs (the same ones for a given --seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras-share", type=float, default=0.1,
                        help="share of the inputs that are .keras files and checkpoints")
    parser.add_argument("--onnx-share", type=float, default=0.1, help="share of the inputs that are ONNX graphs")
    parser.add_argument("--keras-load", action="store_true",
                        help="load the .keras files that pass fmnist's checks with Keras too (imports Keras; slower)")
    parser.add_argument("--one-bomb", action="store_true", help="only the costliest decompression bomb")
    parser.add_argument("--surface", choices=("inputs", "studies", "reports", "http"), default="inputs",
                        help="inputs: files predict and load read (default); studies: study folders under report "
                        "and resume; reports: run folders under report; http: requests to fmnist serve")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if args.surface == "inputs":
        summary = fuzz_inputs(args.seconds, args.seed, args.keras_share, args.keras_load, not args.one_bomb,
                              args.inputs, args.onnx_share)
    elif args.surface == "http":
        summary = fuzz_http(args.seconds, args.seed, args.inputs)
    else:
        summary = fuzz_folders(args.surface, args.seconds, args.seed, args.inputs)
    print(json.dumps(summary))
    return 1 if summary["crashes"] else 0
