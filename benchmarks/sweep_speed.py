"""Many members in one program against the same members one after another, measured side by side.

On the real data, the tutorial's recipe (standard normalization, SGD, batch 32), in child processes so
each gets the XLA device set-up it asks for:

  members    N members (seeds 0..N-1, learning rates spread over 0.003..0.03) as one program of the
             members engine, sharded over one XLA CPU device per core (what `fmnist sweep` uses)
  fused      the same N members trained one after another with the fused engine (`fmnist train`)
             -- the two take turns epoch by epoch in one process, so machine noise hits both alike
  members-1  the same program on a single XLA device (why the sweep makes one device per core)
  memory     peak RSS of a process training one epoch of a 54-member program (6 rates x 9 seeds)

On a GPU it also times the full default grid of one optimizer (6 methods x 9 rates x 5 seeds = 270
members x 10 epochs) with `fmnist sweep`, and the single-model engines (fused and Keras fit).

    python benchmarks/sweep_speed.py [--members 8] [--epochs 4]
"""

from __future__ import annotations

import argparse
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
    from fmnist.engines.members import Member

    return [Member("standard", RATES[index % len(RATES)], index) for index in range(count)]


def _setup():
    from fmnist import data, normalization

    splits = data.split(data.load())
    return splits, {"standard": normalization.get("standard").fit(splits.x_train)}


def _progress():
    from fmnist.progress import Progress

    return Progress(1, stream=open(os.devnull, "w"), live=False, quiet=True)


def child_side_by_side(count: int, epochs: int, with_fused: bool) -> dict:
    """Epoch times of the members program and (optionally) of the fused engine, taking turns."""
    import jax
    import keras

    from fmnist import engines
    from fmnist.config import TrainConfig
    from fmnist.engines.members import MembersEngine
    from fmnist.model import build_model

    splits, stats = _setup()
    members = _members(count)
    program = MembersEngine("sgd", members, stats, splits, 32, _progress())
    fused = []
    if with_fused:
        for member in members:
            keras.utils.set_random_seed(member.seed)
            config = TrainConfig(seed=member.seed, learning_rate=member.learning_rate)
            model = build_model("standard", stats["standard"], member.learning_rate)
            fused.append(engines.create("fused", model, splits, config, _progress()))
    times = {"members": [], "fused": []}
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        program.train_epoch(epoch)
        times["members"].append(time.perf_counter() - started)
        if fused:
            started = time.perf_counter()
            for engine in fused:
                engine.train_epoch(epoch)
            times["fused"].append(time.perf_counter() - started)
    return {"devices": jax.device_count(), "device": jax.devices()[0].device_kind, "times": times}


def child_memory(rates: int, seeds: int) -> dict:
    from fmnist.engines.members import Member, MembersEngine

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


def _steady(times):
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def _gpu_grid(epochs: int) -> None:
    """The full default grid of one optimizer with `fmnist sweep`, wall time including compilation."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fmnist", "sweep", "--optimizers", "sgd", "--epochs", str(epochs),
                        "--save-models", "none", "--output-dir", f"{folder}/grid"], check=True)
        wall = time.perf_counter() - started
    members = 6 * 9 * 5
    print(f"full default grid, sgd: {members} members x {epochs} epochs in {wall:.1f} s wall (target <= 30 s), "
          f"{members * epochs / wall:.0f} member-epochs/s including start-up and compilation")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per engine; the first includes compilation")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    import jax

    gpu = jax.default_backend() != "cpu"
    sharded = _run_child("child_side_by_side", None if gpu else cores, args.members, args.epochs, True)
    members_s, fused_s = _steady(sharded["times"]["members"]), _steady(sharded["times"]["fused"])
    print(f"device: {sharded['device']} x {sharded['devices']}; {cores} CPU cores; {args.members} members; "
          f"steady state = median of epochs 2..{args.epochs}")
    print(f"{'engine':<34} {'first s':>8} {'steady s':>9} {'s per member-epoch':>19}")
    rows = [("members, one program", sharded["times"]["members"]),
            (f"fused, {args.members} one after another", sharded["times"]["fused"])]
    if not gpu:
        single = _run_child("child_side_by_side", 1, args.members, args.epochs, False)
        rows.append(("members, one program on 1 device", single["times"]["members"]))
    for name, times in rows:
        print(f"{name:<34} {times[0]:>8.2f} {_steady(times):>9.2f} {_steady(times) / args.members:>19.3f}")
    print(f"members / fused, speed-up (target >= 1.3 on the CPU, >= 20 on a GPU): {fused_s / members_s:.2f}")
    if not gpu:
        print(f"one device per core / one device: {_steady(single['times']['members']) / members_s:.2f}")
    memory = _run_child("child_memory", None if gpu else cores, 6, 9)
    print(f"memory: {memory['members']} members, one epoch and the test set: peak RSS {memory['peak_rss_mb']:.0f} MB "
          f"(target <= 2048 MB on the CPU), {memory['seconds']:.1f} s")
    if gpu:
        _gpu_grid(10)


if __name__ == "__main__":
    main()
