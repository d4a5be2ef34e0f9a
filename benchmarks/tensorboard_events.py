"""What TensorBoard event files cost a study: the default sweep's members (990), 10 epochs.

Times the three writes of fmnist.reporting.events for every member, in a temporary folder: the rewrite when
a program starts (or resumes), the append after each epoch's checkpoint, and the rewrite with status
and test metrics when the program finishes. Each member is laid out as Keras's TensorBoard callback lays
out a run: its HParams session in tensorboard/<member>/, its epochs in train/ and validation/ (an append
writes to both), its test metrics in test/; so a rewrite replaces four files. Prints seconds for all
members and per member, and the files' count and size.

    .venv/bin/python benchmarks/tensorboard_events.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from fmnist.config import SweepConfig
from fmnist.reporting import events
from fmnist.training.grid import members_of


def main(repeats: int = 3) -> None:
    config = SweepConfig()
    members = members_of(config, "sweep")
    indices = [member.index for member in members]
    rows = [{"epoch": epoch, "loss": 0.3, "accuracy": 0.9, "val_loss": 0.33, "val_accuracy": 0.88, "epoch_seconds": 1.5}
            for epoch in range(1, config.epochs + 1)]
    tests = {index: {"test_loss": 0.35, "test_accuracy": 0.87} for index in indices}
    timings: dict[str, list[float]] = {"start (rewrite, no epochs)": [], "one epoch (append)": [],
                                       f"finish (rewrite, {config.epochs} epochs, status, test)": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            histories = [[] for _ in members]
            started = time.perf_counter()
            events.write_members(Path(folder), config, members, indices, histories)
            timings["start (rewrite, no epochs)"].append(time.perf_counter() - started)
            epoch_times = []
            for row in rows:
                for history in histories:
                    history.append(row)
                started = time.perf_counter()
                events.append_members(Path(folder), members, indices, histories, row["epoch"])
                epoch_times.append(time.perf_counter() - started)
            timings["one epoch (append)"].append(sum(epoch_times) / len(epoch_times))
            started = time.perf_counter()
            events.write_members(Path(folder), config, members, indices, histories, tests)
            timings[f"finish (rewrite, {config.epochs} epochs, status, test)"].append(time.perf_counter() - started)
            files = [path for path in Path(folder).rglob("*tfevents*") if path.is_file()]
            size = sum(path.stat().st_size for path in files)
    print(f"{len(members)} members, median of {repeats}:")
    for name, values in timings.items():
        value = sorted(values)[len(values) // 2]
        print(f"  {name:<45} {value:7.3f} s for all, {value / len(members) * 1e3:6.3f} ms per member")
    print(f"  event files after {config.epochs} epochs: {len(files)}, {size / 1e6:.2f} MB "
          f"({size / len(members) / 1e3:.1f} kB per member)")


if __name__ == "__main__":
    main()
