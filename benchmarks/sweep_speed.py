"""`fmnist sweep` against `fmnist train` as a user runs them, measured side by side, and what retiring
diverged members saves.

On the real data, the tutorial's recipe (standard normalization, SGD, batch 32):

  train      N runs of `fmnist train` (seeds 0..N-1, rates spread over 0.003..0.03), one process each,
             with the machine's default devices: what a user would otherwise run
  sweep      the same N members as one `fmnist sweep` process (one program, one CPU device per core)
             -- the two take turns, round by round, so machine noise hits both alike. Two figures: the
             whole process (start-up, data, compilation, every epoch and the files) and the steady
             state per member-epoch (median epoch of the runs' and the program's history.csv, epochs 2..)
  retire     a program of 8 members of which 4 diverge in their first epoch, with the diverged members
             retired from the program (the default) and kept computing (as before): steady epoch times
  memory     peak RSS of a process training one epoch of a 54-member program (6 rates x 9 seeds)

`--study FOLDER` instead reads a finished sweep's members.csv and says how many member-epochs retiring
its diverged members saved (the rows each program computed, padded to whole devices, with and without).
On a GPU it also times the full default grid of one optimizer with `fmnist sweep`.

    python benchmarks/sweep_speed.py [--members 8] [--epochs 4] [--rounds 2]
    python benchmarks/sweep_speed.py --study runs/sweep
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = (0.003, 0.005, 0.01, 0.02, 0.03)


def _members(count):
    from fmnist.engines.member_state import Member

    return [Member("standard", RATES[index % len(RATES)], index) for index in range(count)]


def _setup():
    from fmnist import data, normalization

    splits = data.split(data.load())
    return splits, {"standard": normalization.get("standard").fit(splits.x_train)}


def _progress():
    from fmnist.training.progress import Progress

    return Progress(1, stream=open(os.devnull, "w"), live=False, quiet=True)


def _steady(times):
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def _epoch_seconds(path: Path) -> list[float]:
    with open(path, newline="") as handle:
        return [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]


def _fmnist(*arguments) -> float:
    """Run ``fmnist`` as a user does (default environment, compilation cache off); wall seconds."""
    env = dict(os.environ, KERAS_BACKEND="jax", FMNIST_COMPILATION_CACHE="off")
    env.pop("XLA_FLAGS", None)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fmnist", *arguments], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def side_by_side(count: int, epochs: int, rounds: int) -> dict:
    """Rounds of N `fmnist train` processes, then one `fmnist sweep` process of the same N members."""
    seeds = -(-count // len(RATES[:4]))
    rates = RATES[:4] if count >= 4 else RATES[:count]
    members = [(rate, seed) for rate in rates for seed in range(seeds)][:count]
    found = {"train_wall": [], "sweep_wall": [], "train_epoch": [], "sweep_epoch": []}
    with tempfile.TemporaryDirectory() as folder:
        for number in range(rounds):
            wall, steady = 0.0, []
            for rate, seed in members:
                run = Path(folder) / f"train-{number}-{rate}-{seed}"
                wall += _fmnist("train", "--learning-rate", str(rate), "--seed", str(seed), "--epochs", str(epochs),
                                "--quiet", "--output-dir", str(run))
                steady.append(_steady(_epoch_seconds(run / "history.csv")))
            found["train_wall"].append(wall)
            found["train_epoch"].append(sum(steady))  # N models' epochs, one after another
            study = Path(folder) / f"sweep-{number}"
            found["sweep_wall"].append(_fmnist(
                "sweep", "--methods", "standard", "--optimizers", "sgd", "--learning-rates", ",".join(map(str, rates)),
                "--seeds", str(seeds), "--epochs", str(epochs), "--extend-grid", "0", "--save-models", "none",
                "--output-dir", str(study)))
            with open(study / "history.csv", newline="") as handle:  # every member's row holds the program's epoch
                by_epoch = {int(row["epoch"]): float(row["epoch_seconds"]) for row in csv.DictReader(handle)}
            found["sweep_epoch"].append(_steady([by_epoch[epoch] for epoch in sorted(by_epoch)]))
    return found | {"members": len(members)}


def child_retire(epochs: int) -> dict:
    """Epoch times of a program of 8 whose 4 raw-pixel members diverge at once, retired and not."""
    from fmnist import data, normalization
    from fmnist.engines.member_state import Member
    from fmnist.engines.members import MembersEngine

    splits = data.split(data.load())
    stats = {method: normalization.get(method).fit(splits.x_train) for method in ("standard", "none")}
    members = [Member("standard", RATES[index], index) for index in range(4)] + [Member("none", 1e3, index)
                                                                                 for index in range(4)]
    times = {}
    for retire in (True, False):
        program = MembersEngine("sgd", members, stats, splits, 32, _progress(), retire=retire)
        times[retire] = []
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            program.train_epoch(epoch)
            times[retire].append(time.perf_counter() - started)
        if list(program.alive) != [True] * 4 + [False] * 4:
            raise SystemExit(f"expected the raw-pixel members to diverge: alive {list(program.alive)}")
    return {"retired": times[True], "kept": times[False]}


def study_savings(folder: Path) -> None:
    """Member-epochs a finished sweep computed with diverged members retired, against keeping them."""
    with open(folder / "members.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    study = json.loads((folder / "study.json").read_text())
    epochs, devices = study["settings"]["epochs"], study["environment"].get("device_count", 1)
    programs: dict[str, list[dict]] = {}
    for row in rows:
        programs.setdefault(row["program"], []).append(row)
    kept = retired = 0
    for members in programs.values():
        whole = -(-len(members) // devices) * devices
        for epoch in range(1, epochs + 1):
            living = sum(1 for row in members if not row["diverged_epoch"] or int(row["diverged_epoch"]) >= epoch)
            kept += whole
            retired += -(-living // devices) * devices if living else 0
    diverged = sum(1 for row in rows if row["status"] == "diverged")
    print(f"{folder}: {len(rows)} members in {len(programs)} programs, {diverged} diverged; program rows computed "
          f"over {epochs} epochs: {kept:,} keeping diverged members, {retired:,} retiring them "
          f"({100 * (1 - retired / kept):.1f}% less)")


def child_memory(rates: int, seeds: int) -> dict:
    from fmnist.engines.member_state import Member
    from fmnist.engines.members import MembersEngine

    splits, stats = _setup()
    members = [Member("standard", 10.0 ** -(1 + index / 2), seed) for index in range(rates) for seed in range(seeds)]
    program = MembersEngine("sgd", members, stats, splits, 32, _progress())
    started = time.perf_counter()
    program.train_epoch(1)
    program.test_metrics()
    return {"members": len(members), "seconds": time.perf_counter() - started,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(function: str, devices: int | None, *arguments) -> dict:
    env = dict(os.environ, KERAS_BACKEND="jax", FMNIST_COMPILATION_CACHE="off")
    env.pop("XLA_FLAGS", None)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import sweep_speed; "
            f"print(json.dumps(sweep_speed.{function}(*{list(arguments)!r})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _gpu_grid(epochs: int) -> None:
    """The full default grid of one optimizer with `fmnist sweep`, wall time including compilation."""
    from fmnist.config import SweepConfig

    defaults = SweepConfig(optimizers=("sgd",))
    with tempfile.TemporaryDirectory() as folder:
        wall = _fmnist("sweep", "--optimizers", "sgd", "--epochs", str(epochs), "--extend-grid", "0",
                       "--save-models", "none", "--output-dir", f"{folder}/grid")
    members = defaults.member_count
    print(f"full default grid, sgd: {members} members x {epochs} epochs in {wall:.1f} s wall (target <= 30 s), "
          f"{members * epochs / wall:.0f} member-epochs/s including start-up and compilation")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; the first includes compilation")
    parser.add_argument("--rounds", type=int, default=2, help="train-then-sweep rounds, taking turns")
    parser.add_argument("--study", type=Path, help="only: what retiring diverged members saved in this sweep folder")
    args = parser.parse_args()
    if args.study:
        study_savings(args.study)
        return
    cores = len(os.sched_getaffinity(0))
    import jax

    gpu = jax.default_backend() != "cpu"
    found = side_by_side(args.members, args.epochs, args.rounds)
    count = found["members"]
    print(f"device: {jax.devices()[0].device_kind}; {cores} CPU cores; {count} members x {args.epochs} epochs; "
          f"{args.rounds} rounds of {count} `fmnist train` processes then one `fmnist sweep`, taking turns")
    print(f"{'':<36} {'fmnist train':>13} {'fmnist sweep':>13} {'ratio':>7}")
    for label, train, sweep, per in (
            ("whole processes, s (median round)", found["train_wall"], found["sweep_wall"], 1),
            ("steady epoch, s per member-epoch", found["train_epoch"], found["sweep_epoch"], count)):
        train_s, sweep_s = statistics.median(train) / per, statistics.median(sweep) / per
        print(f"{label:<36} {train_s:>13.3f} {sweep_s:>13.3f} {train_s / sweep_s:>6.2f}x")
    retire = _run_child("child_retire", None if gpu else cores, args.epochs)
    retired, kept = _steady(retire["retired"]), _steady(retire["kept"])
    print(f"retire: 8 members, 4 diverge in epoch 1; steady epoch {retired:.2f} s retired, {kept:.2f} s kept computing "
          f"({kept / retired:.2f}x)")
    memory = _run_child("child_memory", None if gpu else cores, 6, 9)
    print(f"memory: {memory['members']} members, one epoch and the test set: peak RSS {memory['peak_rss_mb']:.0f} MB "
          f"(target <= 2048 MB on the CPU), {memory['seconds']:.1f} s")
    if gpu:
        _gpu_grid(10)


if __name__ == "__main__":
    main()
