"""Would training the seeds of one method together (jax.vmap over the parameters) pay off?

Measures, side by side on the real data, one epoch of the tutorial's MLP for N seeds run one after the
other versus the same N seeds as one vmapped program (plain JAX, like the floor in train_speed.py).
Prints seconds and the ratio; rounds alternate so noise hits both alike.

    python benchmarks/seeds_vmap.py [--seeds 3] [--rounds 4]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np

from fmnist import data


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4, help="the first round includes compilation")
    args = parser.parse_args()

    splits = data.split(data.load())
    mean, std = float(splits.x_train.mean()), float(splits.x_train.std())
    x, y = jax.device_put(splits.x_train), jax.device_put(splits.y_train.astype(np.int32))

    def init(key):
        params = []
        for key, (fan_in, fan_out) in zip(jax.random.split(key, 3), [(784, 300), (300, 100), (100, 10)]):
            limit = (6 / (fan_in + fan_out)) ** 0.5
            params += [jax.random.uniform(key, (fan_in, fan_out), minval=-limit, maxval=limit), jnp.zeros(fan_out)]
        return params

    def loss(params, images, labels):
        h = ((images.astype(jnp.float32) - mean) / std).reshape(images.shape[0], -1)
        h = jax.nn.relu(h @ params[0] + params[1])
        h = jax.nn.relu(h @ params[2] + params[3])
        log_probs = jax.nn.log_softmax(h @ params[4] + params[5])
        return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))

    def epoch(params, batches):
        def step(params, indices):
            grads = jax.grad(loss)(params, x[indices], y[indices])
            return [p - 0.01 * g for p, g in zip(params, grads)], None

        return jax.lax.scan(step, params, batches)[0]

    one, together = jax.jit(epoch), jax.jit(jax.vmap(epoch))
    params = [init(jax.random.PRNGKey(seed)) for seed in range(args.seeds)]
    stacked = [jnp.stack(group) for group in zip(*params)]
    steps = len(splits.y_train) // 32
    orders = [np.random.default_rng([seed, 1]).permutation(len(splits.y_train))[: steps * 32].reshape(steps, 32)
              for seed in range(args.seeds)]
    sequential, vmapped = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        jax.block_until_ready([one(p, o) for p, o in zip(params, orders)])
        sequential.append(time.perf_counter() - started)
        started = time.perf_counter()
        jax.block_until_ready(together(stacked, jnp.stack(orders)))
        vmapped.append(time.perf_counter() - started)
    device = jax.devices()[0]
    a, b = statistics.median(sequential[1:]), statistics.median(vmapped[1:])
    print(f"device: {device.platform} {device.device_kind}; {args.seeds} seeds, one epoch each, median of rounds 2..{args.rounds}")
    print(f"one after the other: {a:.3f} s; vmapped together: {b:.3f} s; speed-up {a / b:.2f}x")


if __name__ == "__main__":
    main()
