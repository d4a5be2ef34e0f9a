"""The ``fused`` engine: a whole epoch of SGD as one compiled XLA program, on the real Keras model.

Per-step dispatch dominates Keras ``fit`` for a model this small (a batch of 32 is microseconds of
arithmetic), so each epoch is one jitted ``lax.scan`` over the shuffled batch indices: gather the batch
on the device, ``model.stateless_call``, ``jax.value_and_grad``, ``optimizer.stateless_apply``, and the
same running loss/accuracy sums that Keras ``fit`` reports. The data are put on the device once; the
variables travel as the scan's carry and are written back into the Keras model after each epoch.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import keras
import numpy as np

from fmnist.engines import shuffle_order, steps_per_epoch

# On a terminal the epoch runs as this many compiled chunks so the bar can move; measured cost in
# docs/benchmarks.md. Elsewhere the full batches of an epoch are one call.
LIVE_CHUNKS = 10


class FusedEngine:
    name = "fused"

    def __init__(self, model: keras.Model, splits, config, progress):
        self.model, self.config, self.progress = model, config, progress
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy()
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.x = jax.device_put(splits.x_train)
        self.y = jax.device_put(splits.y_train.astype(np.int32))
        self.x_valid = jax.device_put(splits.x_valid)
        self.y_valid = jax.device_put(splits.y_valid.astype(np.int32))
        self._steps = jax.jit(self._steps_impl)
        self._evaluate = jax.jit(self._evaluate_impl)

    # -- state ---------------------------------------------------------------------------------------
    def _read_state(self):
        model = self.model
        return (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
        )

    def _write_state(self, state) -> None:
        model = self.model
        for variables, values in zip(
            (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables), state
        ):
            for variable, value in zip(variables, values):
                variable.assign(value)

    # -- compiled pieces -----------------------------------------------------------------------------
    def _loss(self, trainable, non_trainable, x, y):
        y_pred, non_trainable = self.model.stateless_call(trainable, non_trainable, x, training=True)
        return self.loss_fn(y, y_pred), (y_pred, non_trainable)

    def _steps_impl(self, state, sums, x, y, batches):
        """Run SGD over ``batches`` (steps, batch_size) of indices into x/y; sums = [loss*n, correct]."""
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)

        def step(carry, indices):
            (trainable, non_trainable, optimizer_vars), (loss_sum, correct) = carry
            xb, yb = x[indices], y[indices]
            (loss, (y_pred, non_trainable)), grads = grad_fn(trainable, non_trainable, xb, yb)
            trainable, optimizer_vars = self.model.optimizer.stateless_apply(optimizer_vars, grads, trainable)
            # Keras fit's running metrics: loss weighted by batch size, accuracy as a count.
            loss_sum = loss_sum + loss * indices.shape[0]
            correct = correct + jnp.sum(jnp.argmax(y_pred, axis=-1) == yb)
            return ((trainable, non_trainable, optimizer_vars), (loss_sum, correct)), None

        carry, _ = jax.lax.scan(step, (state, sums), batches)
        return carry

    def _evaluate_impl(self, state, x, y):
        trainable, non_trainable, _ = state
        y_pred, _ = self.model.stateless_call(trainable, non_trainable, x, training=False)
        accuracy = jnp.mean(jnp.argmax(y_pred, axis=-1) == y)
        return self.loss_fn(y, y_pred), accuracy

    # -- one epoch -----------------------------------------------------------------------------------
    def _chunks(self, order: np.ndarray) -> list[np.ndarray]:
        """Index arrays of shape (steps, batch): the full batches (in chunks on a terminal), then the rest."""
        batch = self.config.batch_size
        full = len(order) // batch
        chunks = []
        if full:
            batches = order[: full * batch].reshape(full, batch)
            size = -(-full // LIVE_CHUNKS) if self.progress.live else full
            chunks += [batches[start: start + size] for start in range(0, full, size)]
        if len(order) % batch:
            chunks.append(order[full * batch:].reshape(1, -1))  # the last partial batch, as Keras trains it
        return chunks

    def train_epoch(self, epoch: int) -> dict:
        order = shuffle_order(self.config.seed, epoch, self.y.shape[0]).astype(np.int32)
        self.progress.start(epoch, steps_per_epoch(len(order), self.config.batch_size))
        state = self._read_state()
        sums = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        done = 0
        for chunk in self._chunks(order):
            state, sums = self._steps(state, sums, self.x, self.y, chunk)
            done += len(chunk)
            if self.progress.live:
                jax.block_until_ready(sums)
                self.progress.advance(done)
        val_loss, val_accuracy = self._evaluate(state, self.x_valid, self.y_valid)
        self._write_state(state)
        loss_sum, correct = (float(value) for value in sums)
        return {
            "loss": loss_sum / len(order),
            "accuracy": correct / len(order),
            "val_loss": float(val_loss),
            "val_accuracy": float(val_accuracy),
        }


