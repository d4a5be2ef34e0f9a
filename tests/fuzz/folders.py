"""The ``studies`` and ``reports`` surfaces: a small sweep (stopped after its first epoch, and finished) or
an evaluated run, made once on tiny generated data; then for each case a copy with one file changed
(``folder_changes``) and ``fmnist report`` (and ``fmnist sweep --resume``, the whole resume) run on it in
this process. Each command must succeed or refuse in one line (exit 2) within its time limit, writing
nothing outside the folder.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from fuzz.folder_changes import change_file, mark_png, page_problems
from fuzz.outcomes import Counts, peak_mb


class Hang(Exception):
    """A command still running after its time limit."""


def attempt(command, counts: Counts, label: str, limit: float = 60) -> str:
    """Run ``command`` (stdout discarded) for at most ``limit`` seconds: "ok", "refused" (an FmnistError that
    the command line ends with exit 2 and one line) or "crash" (anything else, an exit 1 or a hang)."""
    import signal

    from fmnist.errors import FmnistError

    def hang(*_):
        raise Hang(f"still running after {limit:g} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            command()
        return "ok"
    except FmnistError as error:
        if error.exit_code == 2 and len(str(error)) < 4000:
            return "refused"
        counts.crash(label, f"{type(error).__name__}, exit {error.exit_code}: {str(error)[:300]}")
    except Exception:  # noqa: BLE001  Hang included: a crash is what the fuzzer looks for
        counts.crash(label)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return "crash"


def tiny_data(folder: Path) -> Path:
    """Learnable fake IDX files as the tests' conftest writes them: 200 training and 50 test images."""
    rng = np.random.default_rng(1)
    for prefix, count in (("train", 200), ("t10k", 50)):
        labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
        images = rng.integers(0, 60, size=(count, 28, 28))
        for index, label in enumerate(labels):
            images[index, 2 * label + 3: 2 * label + 7, 4:24] += 180
        images = images.clip(0, 255).astype(np.uint8)
        folder.mkdir(parents=True, exist_ok=True)
        header = (0x803).to_bytes(4, "big") + b"".join(int(size).to_bytes(4, "big") for size in images.shape)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
        header = (0x801).to_bytes(4, "big") + count.to_bytes(4, "big")
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
    return folder


def resume_study(folder: Path) -> None:
    """`fmnist sweep --resume FOLDER`, as the command line calls the library."""
    from fmnist.store.studies import read_study
    from fmnist.training.resume import resumed_study
    from fmnist.training.sweep import sweep

    sweep(resumed_study(folder, read_study(folder, "sweep"), {}), folder, resume=True, log=lambda *_: None)


def study_starts(root: Path, data: Path) -> list[Path]:
    """A sweep of two programs of one member each, two epochs: stopped after its first epoch (a progress
    file and a state), and the same finished with both models kept."""
    import signal

    from fmnist.config import SweepConfig
    from fmnist.errors import Interrupted
    from fmnist.training.sweep import sweep

    config = SweepConfig(methods=("none", "standard"), learning_rates=(0.01,), optimizers=("sgd",), seeds=1, epochs=2,
                         valid_size=50, extend_grid=0, save_models="all", members_per_program=1, data_dir=str(data),
                         verify=False)
    stopped, finished = root / "stopped", root / "finished"
    try:
        sweep(config, stopped, log=lambda *_: None, should_stop=lambda: signal.SIGINT)
    except Interrupted:
        pass
    shutil.copytree(stopped, finished, symlinks=True)
    resume_study(finished)
    return [stopped, finished]


def run_start(root: Path, data: Path) -> list[Path]:
    """`fmnist train` (two epochs) on the tiny data, then `fmnist evaluate`: every file the report reads."""
    from fmnist.cli import main

    run, options = root / "run", ["--data-dir", str(data), "--skip-checksum"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        codes = (main(["train", *options, "--valid-size", "50", "--epochs", "2", "--quiet", "--output-dir", str(run)]),
                 main(["evaluate", str(run), *options]))
    if codes != (0, 0):
        raise RuntimeError(f"the run to start from failed: {printed.getvalue()}")
    return [run]


def target(folder: Path, rng: random.Random) -> Path:
    """One of the files of ``folder`` that report and resume read: its JSON, tables and states three times
    as often as its pictures and models."""
    weights = {".json": 3, ".csv": 3, ".npz": 3, ".png": 1, ".keras": 1}
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix in weights
                   and path.name != "checkpoint.npz")  # a run's checkpoint: train --resume reads it, not report
    return rng.choices(files, [weights[path.suffix] for path in files])[0]


def kind_of(relative: Path) -> str:
    """A file's name with the names of members and programs as words (its kind, for the tally)."""
    parts = list(relative.parts)
    if parts[0] == "programs":
        parts[1] = "PROGRAM"
    elif len(parts) > 1:
        parts[0] = "MEMBER"
    return "/".join(parts)


def snapshot(root: Path, skip: Path) -> dict:
    """Every path below ``root`` but ``skip`` with its size and time: a file written outside a case shows."""
    found = {}
    for path in root.rglob("*"):
        if path != skip and skip not in path.parents:
            info = path.lstat()
            found[str(path)] = (info.st_size, info.st_mtime_ns)
    return found


def fuzz_folders(surface: str, seconds: float, seed: int, count: int | None = None) -> dict:
    """``surface`` "studies": a stopped or finished small sweep, one file changed, then `fmnist report` and
    `fmnist sweep --resume` on it (in this process, the whole resume: training included); "reports": an
    evaluated run, one file changed, then `fmnist report`. Each command must end as success or a refusal
    in one line (exit 2), within its time limit, writing nothing outside the folder; each page written
    must show every field's markup escaped and embed no picture from outside the folder."""
    from fmnist.runtime import use_cpu_devices

    use_cpu_devices()  # as the command line does for a sweep, before JAX starts
    rng, counts, files, home = random.Random(seed), Counts(), {}, os.getcwd()
    set_up = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as temporary:
        root = Path(temporary)
        for folder in ("outside", "cwd", "work"):
            (root / folder).mkdir()
        (root / "outside" / "mark.png").write_bytes(mark_png())
        os.chdir(root / "cwd")  # a file a command writes into the working folder shows in the snapshot
        try:
            starts = (study_starts if surface == "studies" else run_start)(root / "starts", tiny_data(root / "data"))
            started, cases = time.monotonic(), 0
            while time.monotonic() - started < seconds and (count is None or cases < count):
                cases += 1
                kind = folder_case(root, rng.choice(starts), surface, rng, counts, cases)
                files[kind] = files.get(kind, 0) + 1
        finally:
            os.chdir(home)
    return {"surface": surface, "cases": cases, "outcomes": counts.outcomes, "files": files, "crashes": counts.crashes,
            "first_crashes": counts.first_crashes, "set_up_seconds": round(started - set_up, 1),
            "seconds": round(time.monotonic() - started, 1), "seed": seed, "peak_rss_mb": peak_mb()}


def folder_case(root: Path, start: Path, surface: str, rng: random.Random, counts: Counts, number: int) -> str:
    """One case: a copy of ``start`` with one file changed, and the commands run on it; the file's kind."""
    from fmnist.reporting.report import write_report

    case = root / "work" / start.name
    shutil.copytree(start, case, symlinks=True)
    changed = target(case, rng)
    kind = kind_of(changed.relative_to(case))
    label = f"case {number}: {kind} of {start.name}, {change_file(changed, rng, root / 'outside')}"
    before = snapshot(root, case)
    commands = [("report", lambda: write_report(case))]
    if surface == "studies":
        commands.append(("resume", lambda: resume_study(case)))
    for name, command in commands:
        outcome = attempt(command, counts, f"{label}, {name}")
        counts.add(f"{name} {outcome}")
        problems = page_problems(case / "report.html") if outcome == "ok" else []
        if problems:
            counts.crash(f"{label}, {name}", "; ".join(problems[:3]))
    written = sorted(set(snapshot(root, case).items()) ^ set(before.items()))
    if written:
        counts.crash(label, f"wrote outside the folder: {written[:3]}")
    shutil.rmtree(case)
    return kind
