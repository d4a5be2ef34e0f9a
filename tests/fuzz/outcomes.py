"""What the ``studies``, ``reports`` and ``http`` surfaces count: outcomes by name and crashes, the first
of each kind described; and peak memory (``VmHWM``), this process's and the server's, which the tests
bound.
"""

from __future__ import annotations

import resource
import traceback


class Counts:
    """Outcomes by name, and crashes with the first of each kind (its last line) described, five kinds at most."""

    def __init__(self):
        self.outcomes: dict[str, int] = {}
        self.crashes = 0
        self.first_crashes: dict[str, str] = {}

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def crash(self, label: str, detail: str | None = None) -> None:
        self.crashes += 1
        detail = detail or traceback.format_exc(limit=-3)
        kind = detail.strip().splitlines()[-1][:200]
        if len(self.first_crashes) < 5 and kind not in self.first_crashes:
            self.first_crashes[kind] = f"{label}: {detail}"


def process_peak_mb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(round(int(line.split()[1]) / 1024) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def peak_mb() -> int:
    """This process's peak resident memory. Linux's VmHWM belongs to the process image; ru_maxrss also
    counts the parent's memory at fork (kept across exec), which is pytest's when a test starts us."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
