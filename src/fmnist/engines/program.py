"""The pure functions of training one Keras model, shared by the ``fused`` and ``members`` engines.

A model's state is three lists of arrays (trainable, non-trainable, optimizer variables). ``steps``
runs SGD over a block of batches as one ``lax.scan``: gather the batch on the device,
``model.stateless_call``, ``jax.value_and_grad``, ``optimizer.stateless_apply``, and the running
loss/accuracy sums Keras ``fit`` reports. The functions are pure, so the members engine can
``jax.vmap`` them over a leading member axis unchanged: one code path for one model and for many.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np

# Validation and test images are scored in blocks of this many when many members run at once: the
# activations of every member for 10,000 images at once would cost gigabytes.
EVAL_BLOCK = 500


def read_state(model: keras.Model) -> tuple[list, list, list]:
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
    )


def write_state(model: keras.Model, state) -> None:
    for variables, values in zip(
        (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables), state
    ):
        for variable, value in zip(variables, values):
            variable.assign(value)


def zero_sums():
    """Running sums of an epoch: loss x batch size, and correct predictions."""
    return (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))


class Program:
    """``steps`` and ``evaluate`` for ``model``, on its logits (model.logits_view): the loss is the
    cross-entropy from logits, and the argmax of the logits is the argmax of the probabilities."""

    def __init__(self, model: keras.Model):
        from fmnist.model import logits_view, loss_from_logits

        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.optimizer = model.optimizer
        self.model = logits_view(model)  # same variables, same order: the state of ``model`` drives it
        self.loss_fn = loss_from_logits()

    def _loss(self, trainable, non_trainable, x, y):
        y_pred, non_trainable = self.model.stateless_call(trainable, non_trainable, x, training=True)
        return self.loss_fn(y, y_pred), (y_pred, non_trainable)

    def steps(self, state, sums, x, y, batches):
        """SGD over ``batches`` (steps, batch) of indices into x/y; returns the new (state, sums)."""
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)

        def step(carry, indices):
            (trainable, non_trainable, optimizer_vars), (loss_sum, correct) = carry
            xb, yb = x[indices], y[indices]
            (loss, (y_pred, non_trainable)), grads = grad_fn(trainable, non_trainable, xb, yb)
            trainable, optimizer_vars = self.optimizer.stateless_apply(optimizer_vars, grads, trainable)
            # Keras fit's running metrics: loss weighted by batch size, accuracy as a count.
            loss_sum = loss_sum + loss * indices.shape[0]
            correct = correct + jnp.sum(jnp.argmax(y_pred, axis=-1) == yb)
            return ((trainable, non_trainable, optimizer_vars), (loss_sum, correct)), None

        carry, _ = jax.lax.scan(step, (state, sums), batches)
        return carry

    def evaluate(self, state, x, y):
        """Loss and accuracy of the state on all of x/y at once (one model)."""
        trainable, non_trainable, _ = state
        y_pred, _ = self.model.stateless_call(trainable, non_trainable, x, training=False)
        return self.loss_fn(y, y_pred), jnp.mean(jnp.argmax(y_pred, axis=-1) == y)

    def evaluate_blocks(self, state, x, y):
        """The same, in blocks of EVAL_BLOCK images, so that many vmapped members fit in memory.

        x/y must hold a multiple of EVAL_BLOCK images; ``pad_blocks`` pads them, with label -1 marking
        the padding, which counts neither in the loss nor in the accuracy.
        """
        trainable, non_trainable, _ = state

        def block(sums, xy):
            xb, yb = xy
            y_pred, _ = self.model.stateless_call(trainable, non_trainable, xb, training=False)
            real = yb >= 0
            losses = keras.losses.sparse_categorical_crossentropy(jnp.maximum(yb, 0), y_pred, from_logits=True)
            hits = (jnp.argmax(y_pred, axis=-1) == yb) & real
            return (sums[0] + jnp.sum(jnp.where(real, losses, 0.0)), sums[1] + jnp.sum(hits)), None

        blocks = (x.reshape(-1, EVAL_BLOCK, *x.shape[1:]), y.reshape(-1, EVAL_BLOCK))
        (loss_sum, correct), _ = jax.lax.scan(block, (jnp.zeros(()), jnp.zeros((), jnp.int32)), blocks)
        count = jnp.sum(y >= 0)
        return loss_sum / count, correct / count


def pad_blocks(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad images and labels to a multiple of EVAL_BLOCK; padded labels are -1."""
    extra = -len(y) % EVAL_BLOCK
    x = np.concatenate([x, np.zeros((extra, *x.shape[1:]), x.dtype)])
    y = np.concatenate([y.astype(np.int32), np.full(extra, -1, np.int32)])
    return x, y
