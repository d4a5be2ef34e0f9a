"""The ``fused`` engine: a whole epoch of SGD as one compiled XLA program, on the real Keras model.

Per-step dispatch dominates Keras ``fit`` for a model this small (a batch of 32 is microseconds of
arithmetic), so each epoch is one jitted ``lax.scan`` over the shuffled batch indices (program.py). The
data are put on the device once; the variables travel as the scan's carry and are written back into
the Keras model after each epoch.
"""

from __future__ import annotations

import jax
import keras
import numpy as np

from fmnist.engines import batches
from fmnist.engines.program import Program, read_state, write_state, zero_sums


class FusedEngine:
    name = "fused"

    def __init__(self, model: keras.Model, splits, config, progress):
        self.model, self.config, self.progress = model, config, progress
        program = Program(model)
        self.x = jax.device_put(splits.x_train)
        self.y = jax.device_put(splits.y_train.astype(np.int32))
        self.x_valid = jax.device_put(splits.x_valid)
        self.y_valid = jax.device_put(splits.y_valid.astype(np.int32))
        self._steps = jax.jit(program.steps)
        self._evaluate = jax.jit(program.evaluate)

    def train_epoch(self, epoch: int) -> dict:
        order = batches.shuffle_order(self.config.seed, epoch, self.y.shape[0]).astype(np.int32)
        self.progress.start(epoch, batches.steps_per_epoch(len(order), self.config.batch_size))
        state, sums, done = read_state(self.model), zero_sums(), 0
        for chunk in batches.chunks(order, self.config.batch_size, self.progress.live):
            state, sums = self._steps(state, sums, self.x, self.y, chunk)
            done += len(chunk)
            if self.progress.live:
                jax.block_until_ready(sums)
                self.progress.advance(done)
        val_loss, val_accuracy = self._evaluate(state, self.x_valid, self.y_valid)
        write_state(self.model, state)
        loss_sum, correct = (np.asarray(value) for value in sums)
        return {
            "loss": float(loss_sum) / len(order),
            "accuracy": int(correct) / len(order),
            "val_loss": float(val_loss),
            "val_accuracy": float(val_accuracy),
        }
