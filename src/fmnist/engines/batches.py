"""Which images each step trains on: the same for every engine, from the seed and the epoch alone."""

from __future__ import annotations

import numpy as np

# On a terminal an epoch runs as this many compiled chunks so the bar can move (measured cost in
# docs/benchmarks.md); elsewhere the full batches of an epoch are one call.
LIVE_CHUNKS = 10


def shuffle_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The permutation of the training set for one epoch (epochs count from 1); never global state."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def steps_per_epoch(count: int, batch_size: int) -> int:
    return -(-count // batch_size)


def chunks(order: np.ndarray, batch_size: int, live: bool) -> list[np.ndarray]:
    """Index arrays of shape (..., steps, batch): the full batches (in chunks when ``live``), then the rest.

    ``order`` is (count,) for one model or (members, count) for many (a NumPy or a sharded JAX array);
    the last partial batch is trained on, as Keras ``fit`` does.
    """
    count = order.shape[-1]
    full = count // batch_size
    lead = order.shape[:-1]
    pieces = []
    if full:
        batches = order[..., : full * batch_size].reshape(*lead, full, batch_size)
        size = -(-full // LIVE_CHUNKS) if live else full
        pieces += [batches[..., start: start + size, :] for start in range(0, full, size)]
    if count % batch_size:
        pieces.append(order[..., full * batch_size:].reshape(*lead, 1, -1))
    return pieces
