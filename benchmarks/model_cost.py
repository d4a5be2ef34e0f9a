"""What each network costs per member-epoch in a study, against `fmnist train --model` as a user runs it.

On the real data (standard normalization, SGD, batch 32), for each model of config.MODELS, in turns so
that machine noise hits them alike:

  program   a program of N members of that model (rates spread over 0.003..0.03, seeds 0..N-1), one CPU
            device per core, as `fmnist sweep --models` runs it: the steady epoch (median of epochs 2..)
            divided by N
  train     one `fmnist train --model` run of one member, in its own process with the machine's default
            devices: its steady epoch (median of epochs 2.. of its history.csv)

and the default grid's cost for that model (990 member-epochs x 10) at the program's rate.

    python benchmarks/model_cost.py [--members 8] [--epochs 3] [--rounds 2] [--models mlp,cnn]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = (0.003, 0.005, 0.01, 0.02, 0.03)


def child_program(model: str, members: int, epochs: int) -> list[float]:
    """Epoch seconds of one program of ``members`` members of ``model`` (in a child process)."""
    from fmnist import data, normalization
    from fmnist.engines.member_state import Member
    from fmnist.engines.members import MembersEngine
    from fmnist.training.progress import Progress

    splits = data.split(data.load())
    stats = {"standard": normalization.get("standard").fit(splits.x_train)}
    program = MembersEngine("sgd", [Member("standard", RATES[index % len(RATES)], index) for index in range(members)],
                            stats, splits, 32, Progress(1, stream=open(os.devnull, "w"), live=False, quiet=True),
                            model=model)
    times = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        program.train_epoch(epoch)
        times.append(time.perf_counter() - started)
    return times


def _child(function: str, devices: int, *arguments):
    env = dict(os.environ, KERAS_BACKEND="jax", FMNIST_COMPILATION_CACHE="off",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import model_cost; "
            f"print(json.dumps(model_cost.{function}(*{list(arguments)!r})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_alone(model: str, epochs: int, folder: Path) -> list[float]:
    """Epoch seconds of `fmnist train --model`, as a user runs it (default environment, no cache)."""
    env = dict(os.environ, KERAS_BACKEND="jax", FMNIST_COMPILATION_CACHE="off")
    env.pop("XLA_FLAGS", None)
    run = folder / f"train-{model}"
    subprocess.run([sys.executable, "-m", "fmnist", "train", "--model", model, "--epochs", str(epochs), "--quiet",
                    "--output-dir", str(run)], env=env, check=True, capture_output=True)
    with open(run / "history.csv", newline="") as handle:
        return [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]


def _steady(times: list[float]) -> float:
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def main():
    from fmnist.config import MODELS, SweepConfig
    from fmnist.model import trainable_parameters

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement; the first includes compilation")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over the models, taking turns")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    models = [name for name in args.models.split(",") if name]
    cores = len(os.sched_getaffinity(0))
    found = {model: {"program": [], "train": []} for model in models}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for model in models:
                found[model]["program"].append(_steady(_child("child_program", cores, model, args.members, args.epochs))
                                               / args.members)
                found[model]["train"].append(_steady(train_alone(model, args.epochs, Path(folder))))
    grid = SweepConfig().member_count * SweepConfig().epochs
    print(f"{cores} CPU cores; programs of {args.members} members, one device per core; steady epochs (median of "
          f"epochs 2..{args.epochs}), the best of {args.rounds} rounds")
    print(f"{'model':<8} {'parameters':>10} {'s/member-epoch':>15} {'train s/epoch':>14} {'train/member':>13} "
          f"{'vs ' + models[0]:>10} {'default grid':>13}")
    base = min(found[models[0]]["program"])
    for model in models:
        member, alone = min(found[model]["program"]), min(found[model]["train"])
        print(f"{model:<8} {trainable_parameters(model):>10,} {member:>15.3f} {alone:>14.2f} {alone / member:>12.1f}x "
              f"{member / base:>9.2f}x {grid * member / 3600:>11.1f} h")


if __name__ == "__main__":
    main()
