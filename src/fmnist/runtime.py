"""What this process runs on and how it runs: fmnist's version and the libraries' (``versions``,
``environment``), JAX's compilation cache and devices, signals, and joining other processes (several
hosts) for a sweep."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys

from fmnist.errors import Interrupted, UsageError

VERSION = "0.1.0"  # the package's version (pyproject.toml reads it from here)


def versions() -> str:
    """fmnist, Python, the backend and the libraries, as the tutorial prints them first (read from the
    installed packages' metadata: nothing is imported)."""
    import platform
    from importlib import metadata

    backend = os.environ.get("KERAS_BACKEND", "jax")
    lines = [f"fmnist {VERSION}", f"python {platform.python_version()}", f"backend {backend}"]
    for package in ("keras", "jax", "jaxlib", "tensorflow", "tensorflow-cpu", "numpy", "scikit-learn", "matplotlib"):
        try:
            lines.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass  # TensorFlow is optional
    return "\n".join(lines)


def environment() -> dict:
    """What the numbers depend on: library versions, backend, devices, XLA flags (the tutorial's step 11)."""
    import platform

    import keras
    import numpy as np

    backend = keras.backend.backend()
    info = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache": os.environ.get("JAX_COMPILATION_CACHE_DIR", ""),
    }
    if backend == "jax":
        import jax
        import jaxlib

        device = jax.devices()[0]
        info.update(jax=jax.__version__, jaxlib=jaxlib.__version__, device=f"{device.platform}:{device.device_kind}",
                    device_count=jax.device_count(), process_count=jax.process_count())
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        info.update(tensorflow=tf.__version__, device="gpu" if gpus else "cpu")
    else:
        info.update(device="cpu")
    return info


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


PROCESS_ENTRY = False  # True when fmnist.cli.main is the process's entry point (not a call from Python)


class Stop:
    """What the work polls: the first signal's number once SIGINT or SIGTERM arrived, else None.

    ``resume`` is the command that continues the work, set (``tell_resume``) once its folder exists."""

    def __init__(self):
        self.received: list[int] = []
        self.resume: str | None = None

    def __call__(self) -> int | None:
        return self.received[0] if self.received else None


def tell_resume(should_stop, command: str) -> None:
    if isinstance(should_stop, Stop):
        should_stop.resume = command


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM ask the work to stop at its next safe point; a second one stops it at once.

    Python runs a signal handler only between bytecodes, so two signals that arrive while one compiled
    program runs (a whole epoch of the fused engine, off a terminal) would reach the handler as one. The
    C-level handler also writes a byte per signal to the wakeup file descriptor, so the handler counts
    those bytes instead: the second signal is never lost, but it acts only when that program returns.
    """
    stop = Stop()
    reader, writer = os.pipe()
    for descriptor in (reader, writer):
        os.set_blocking(descriptor, False)

    def handler(number, frame):
        try:
            arrived = list(os.read(reader, 1024))
        except BlockingIOError:
            arrived = []
        stop.received += arrived or [number]
        if len(stop.received) > 1:
            raise Interrupted(stop.received[-1], "at once by a second signal", stop.resume)
        print(f"\nfmnist: {signal.Signals(number).name} received; stopping after this epoch (send it again to stop "
              "at once, as soon as the compiled step running now returns; the last checkpoint stays)", file=sys.stderr)

    previous_fd = signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, old in previous.items():
            # A process that is stopping for a signal has nothing left to stop: a second signal during its
            # exit (printing, JAX's teardown) must not end it with a traceback or another status.
            signal.signal(number, signal.SIG_IGN if stop.received and PROCESS_ENTRY else old)
        signal.set_wakeup_fd(previous_fd)
        os.close(reader)
        os.close(writer)


def use_cpu_devices() -> None:
    """One XLA CPU device per core, unless XLA_FLAGS already says how many.

    Members of a sweep are sharded over the devices; on the CPU, one device per core runs each core's
    members in its own thread, which measured 1.5x faster than one device running all of them
    (docs/benchmarks.md). It only adds host devices: a GPU or TPU stays the default. Must run before
    JAX is imported.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cores}".strip()


def join_processes(coordinator_address: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Join a multi-process (multi-host) JAX run through ``jax.distributed.initialize``.

    Unset values come from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID, then from
    JAX's own cluster detection (Slurm, Open MPI, Kubernetes). Nothing happens when none is set.
    """
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    count = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    index = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    if address is None and count is None and index is None:
        return
    if count is not None and (count < 1 or (index is not None and not 0 <= index < count)):
        raise UsageError(f"process_id {index}: must be from 0 to {count - 1} ({count} processes)", "process_id")
    import jax

    try:
        jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
    except (RuntimeError, ValueError) as error:
        raise UsageError(f"cannot join the other processes at {address}: {str(error).splitlines()[0]}") from None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r}: must be an integer") from None


def is_main_process() -> bool:
    import jax

    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait for every process (a no-op in a single process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def any_process(value: int | None) -> int | None:
    """The first non-None value (a signal number) any process holds, on every process."""
    import jax

    if jax.process_count() == 1:
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    values = multihost_utils.process_allgather(np.array([value or 0], np.int32))
    found = [int(v) for v in np.ravel(values) if v]
    return found[0] if found else None


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


@functools.cache
def _libc():
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None  # glibc only
    except OSError:
        return None


def map_large_blocks() -> None:
    """Let glibc give every block of 1 MB or more its own mapping, returned to the system when freed.

    By default glibc raises that threshold to the largest block freed so far (up to 32 MB), so after the
    first 8 MB body every body came from its heaps and stayed there, fragmented: after 190 uploads of
    8 MB, each retried until served, the idle server kept 485 MB (356 MB before the load) even after
    ``malloc_trim``; with the threshold fixed at 1 MB, 390 MB. Smaller blocks (socket reads of 256 kB,
    Python's objects) keep the heaps. Called once by ``serve.server.serve``, which owns the process."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, 2**20)


def give_back_memory() -> None:
    """Return the free memory of every glibc arena to the system (``malloc_trim(0)``)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
