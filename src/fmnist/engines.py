"""Training engines: each trains the Keras model one epoch at a time and returns that epoch's metrics.

``keras`` is the reference (``model.fit``, any backend). ``fused`` (fused.py, JAX only) compiles a whole
epoch into one XLA program. Both see the same batches in the same order: the shuffle comes from
``(seed, epoch)`` through a NumPy Generator, never from global state, and the last partial batch is
trained on.
"""

from __future__ import annotations

import numpy as np

from fmnist.errors import UsageError


def shuffle_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The permutation of the training set for one epoch (epochs count from 1)."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def steps_per_epoch(count: int, batch_size: int) -> int:
    return -(-count // batch_size)


def resolve(name: str, backend: str) -> str:
    if name == "auto":
        return "fused" if backend == "jax" else "keras"
    if name == "fused" and backend != "jax":
        raise UsageError(f"--engine fused needs the JAX backend (KERAS_BACKEND is {backend!r}); use --engine keras")
    return name


def create(name: str, model, splits, config, progress):
    import keras

    name = resolve(name, keras.backend.backend())
    if name == "fused":
        from fmnist.fused import FusedEngine

        return FusedEngine(model, splits, config, progress)
    return KerasEngine(model, splits, config, progress)


class KerasEngine:
    """``model.fit`` one epoch at a time, fed in the engine-independent shuffle order."""

    name = "keras"

    def __init__(self, model, splits, config, progress):
        import keras

        self.model, self.splits, self.config, self.progress = model, splits, config, progress
        steps = steps_per_epoch(len(splits.y_train), config.batch_size)

        class _Bar(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                progress.start(self.epoch_number, steps)

            def on_train_batch_end(self, batch, logs=None):
                progress.advance(batch + 1)

        self._bar = _Bar() if progress.live else None
        self._steps = steps

    def train_epoch(self, epoch: int) -> dict:
        splits, config = self.splits, self.config
        order = shuffle_order(config.seed, epoch, len(splits.y_train))
        callbacks = []
        if self._bar is not None:
            self._bar.epoch_number = epoch
            callbacks.append(self._bar)
        history = self.model.fit(
            splits.x_train[order],
            splits.y_train[order],
            batch_size=config.batch_size,
            epochs=1,
            shuffle=False,  # the order above is the shuffle
            verbose=0,
            validation_data=(splits.x_valid, splits.y_valid),
            callbacks=callbacks,
        )
        return {name: float(values[-1]) for name, values in history.history.items()}
