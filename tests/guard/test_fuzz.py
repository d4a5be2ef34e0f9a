"""The fuzzer (tests/fuzz/, run as tests/fuzz_inputs.py), bounded: a fixed seed and count per surface (the
same cases every time, a few seconds each, most of it making what the cases start from), in its own process
so that its peak memory is its own.

Inputs: every mutated PNG, JPEG, .npy, IDX, .keras (bytes and zip headers), .onnx graph and checkpoint
must end as a prediction or an error row (a loaded model or a refusal in one line), never a traceback;
the decompression bomb it also feeds, and the zip members whose streams go on for 64 MiB past their
declared sizes, must not cost more than the documented bound. Study folders, run folders and HTTP
requests: every case ends as one of the documented outcomes (the docstrings of tests/fuzz/ say which)."""

import json
import os
import subprocess
import sys
from pathlib import Path

PEAK_MB = 500  # a 40-megapixel RGBA bomb decoded costs about 320 MB; without it the process needs 40
FOLDERS_PEAK_MB = 900  # JAX, Keras and matplotlib with a tiny sweep: 550 MB measured
HTTP_PEAK_MB = 300  # the server with the ONNX seed model: 104 to 190 MB measured; the client 60


def _fuzz(*options: str) -> dict:
    script = Path(__file__).resolve().parents[1] / "fuzz_inputs.py"
    result = subprocess.run([sys.executable, str(script), "--seed", "0", *options], capture_output=True, text=True,
                            check=False, timeout=300, env=dict(os.environ, FMNIST_COMPILATION_CACHE="off"))
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["crashes"] == 0, summary["first_crashes"]
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return summary


def test_fuzzed_inputs_end_as_rows_in_bounded_memory():
    summary = _fuzz("--inputs", "800", "--seconds", "20", "--one-bomb")
    assert summary["inputs"] >= 200 and summary["rows"] >= summary["inputs"]  # every input got a row
    assert summary["predictions"] > 0 and summary["errors"] > 0 and summary["models"] > 0
    assert summary["models_loaded"] >= 1  # the unmutated archive passes every check
    assert summary["onnx_loaded"] >= 1 and summary["onnx_refused"] > 0  # the seed graph runs; some mutants not
    assert summary["checkpoints_loaded"] >= 1 and summary["checkpoints_refused"] > 0 and summary["zip_headers"] > 0
    assert summary["peak_rss_mb"] < PEAK_MB, summary


def test_changed_study_files_end_as_reports_resumes_or_one_line_refusals():
    summary = _fuzz("--surface", "studies", "--inputs", "8", "--seconds", "60")
    outcomes = summary["outcomes"]
    assert summary["cases"] == 8 and outcomes.get("report ok", 0) + outcomes.get("report refused", 0) == 8
    assert outcomes.get("resume ok") and outcomes.get("resume refused"), outcomes  # both ways, whole resumes
    assert summary["peak_rss_mb"] < FOLDERS_PEAK_MB, summary


def test_changed_run_files_end_as_escaped_reports_or_one_line_refusals():
    summary = _fuzz("--surface", "reports", "--inputs", "200", "--seconds", "60")
    assert summary["outcomes"].get("report ok") and summary["outcomes"].get("report refused"), summary["outcomes"]
    assert len(summary["files"]) >= 6  # JSON, tables, pictures and the model each changed
    assert summary["peak_rss_mb"] < FOLDERS_PEAK_MB, summary


def test_mutated_requests_get_answers_and_the_server_stays_healthy():
    summary = _fuzz("--surface", "http", "--inputs", "200", "--seconds", "60")
    assert summary["cases"] == 200 and summary["outcomes"].get("answered") and summary["outcomes"].get("refused")
    assert summary["health_slowest_s"] < 1 and summary["server_peak_rss_mb"] < HTTP_PEAK_MB, summary
