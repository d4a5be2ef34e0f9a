"""One line per epoch, and a live bar while an epoch runs when the output is a terminal."""

from __future__ import annotations

import sys
import time

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def format_row(row: dict, epochs: int) -> str:
    metrics = " - ".join(f"{name}: {row[name]:.4f}" for name in METRICS)
    return f"Epoch {row['epoch']}/{epochs} - {row['epoch_seconds']:.2f}s - {metrics}"


class Progress:
    """Prints epoch lines; on a terminal also redraws a bar (at most ten times a second)."""

    def __init__(self, epochs: int, stream=None, live: bool | None = None, quiet: bool = False):
        self.epochs = epochs
        self.stream = stream or sys.stdout
        self.live = (self.stream.isatty() if live is None else live) and not quiet
        self.quiet = quiet
        self._drawn = 0.0

    def start(self, epoch: int, steps: int) -> None:
        self._epoch, self._steps, self._started = epoch, steps, time.perf_counter()
        self.advance(0)

    def advance(self, step: int) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        if step < self._steps and now - self._drawn < 0.1:
            return
        self._drawn = now
        width = 30
        filled = int(width * step / max(self._steps, 1))
        bar = "=" * filled + ">" * (filled < width) + "." * (width - filled - 1)
        self.stream.write(f"\rEpoch {self._epoch}/{self.epochs} [{bar}] {step}/{self._steps} {now - self._started:.1f}s")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar (a study prints its own line after each epoch)."""
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def finish(self, row: dict) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        if not self.quiet:
            self.stream.write(format_row(row, self.epochs) + "\n")
            self.stream.flush()


class Clock:
    """Member-epochs done and seconds spent, for a sweep's ETA."""

    def __init__(self, total: int):
        self.total, self.done, self.seconds = total, 0, 0.0

    def add(self, member_epochs: int, seconds: float) -> str:
        self.done += member_epochs
        self.seconds += seconds
        left = (self.total - self.done) * self.seconds / max(self.done, 1)
        return f"ETA {duration(left)}" if self.done < self.total else "done"


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
