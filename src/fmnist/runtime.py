"""Process-level set-up the command line does around the work: JAX's compilation cache and signals."""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def use_compilation_cache() -> None:
    """Keep JAX's compiled programs (initializers, the epoch, predict) on disk between runs.

    Every process otherwise recompiles the same small programs (about 2 s per run on 2 cores). The cache
    is ``$XDG_CACHE_HOME/fmnist/jax`` (default ~/.cache); it holds the compiled form of identical
    programs, so results do not change. ``FMNIST_COMPILATION_CACHE=off`` or your own
    ``JAX_COMPILATION_CACHE_DIR`` turns it off or moves it. Must run before JAX is imported.
    """
    if os.environ.get("FMNIST_COMPILATION_CACHE") == "off" or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(base, "fmnist", "jax")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM ask training to stop at the next safe point; a second one stops at once."""
    received = []

    def handler(number, frame):
        if received:
            raise KeyboardInterrupt
        received.append(number)
        print(f"\nfmnist: {signal.Signals(number).name} received; stopping after this epoch "
              "(send it again to stop at once; the last checkpoint stays)", file=sys.stderr)

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
