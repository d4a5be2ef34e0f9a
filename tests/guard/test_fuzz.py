"""The fuzzer (tests/fuzz_inputs.py), bounded: a fixed seed and count (the same 800 inputs every time, a
few seconds), in its own process so that its peak memory is its own. Every mutated PNG, JPEG, .npy, IDX,
.keras (bytes and zip headers), .onnx graph and checkpoint must end as a prediction or an error row (a
loaded model or a refusal in one line), never a traceback; the decompression bomb it also feeds, and the
zip members whose streams go on for 64 MiB past their declared sizes, must not cost more than the
documented bound."""

import json
import os
import subprocess
import sys
from pathlib import Path

PEAK_MB = 500  # a 40-megapixel RGBA bomb decoded costs about 320 MB; without it the process needs 40


def test_fuzzed_inputs_end_as_rows_in_bounded_memory():
    script = Path(__file__).resolve().parents[1] / "fuzz_inputs.py"
    command = [sys.executable, str(script), "--inputs", "800", "--seconds", "20", "--seed", "0", "--one-bomb"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180,
                            env=dict(os.environ, FMNIST_COMPILATION_CACHE="off"))
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["crashes"] == 0, summary["first_crashes"]
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert summary["inputs"] >= 200 and summary["rows"] >= summary["inputs"]  # every input got a row
    assert summary["predictions"] > 0 and summary["errors"] > 0 and summary["models"] > 0
    assert summary["models_loaded"] >= 1  # the unmutated archive passes every check
    assert summary["onnx_loaded"] >= 1 and summary["onnx_refused"] > 0  # the seed graph runs; some mutants not
    assert summary["checkpoints_loaded"] >= 1 and summary["checkpoints_refused"] > 0 and summary["zip_headers"] > 0
    assert summary["peak_rss_mb"] < PEAK_MB, summary
