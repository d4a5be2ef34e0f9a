"""Training speed of the tutorial's recipe, measured side by side in one run on the real data.

Compares, epoch by epoch in turn (so machine noise hits them alike):
  floor      a minimal plain-JAX lax.scan of the same MLP, written here (the reference)
  fused      fmnist's default engine (the real Keras model, one compiled program per epoch)
  fused-live the same, run as chunks so a progress bar can move (what a terminal gets)
  keras-jax  Keras model.fit on the JAX backend
  keras-tf   Keras model.fit on the TensorFlow backend (a child process, when TensorFlow is installed)
and then times a full `fmnist train` (10 epochs) in a child process with its peak memory.

Steady state is the median of epochs 2..N; "first" is epoch 1, which includes compilation.

    python benchmarks/train_speed.py [--epochs 5] [--tensorflow-python .venv-tf/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup(data_dir, backend):
    os.environ.setdefault("KERAS_BACKEND", backend)
    from fmnist import data, normalization

    splits = data.split(data.load(data_dir))
    stats = normalization.get("standard").fit(splits.x_train)
    return splits, stats


def _engine(kind, splits, stats):
    import keras

    from fmnist import engines
    from fmnist.config import TrainConfig
    from fmnist.model import build_model
    from fmnist.training.progress import Progress

    config = TrainConfig(engine="keras" if kind.startswith("keras") else "fused")
    keras.utils.set_random_seed(config.seed)
    model = build_model("standard", stats)
    live = kind == "fused-live"
    progress = Progress(config.epochs, stream=open(os.devnull, "w"), live=live, quiet=True)
    return engines.create(config.engine, model, splits, config, progress)


class Floor:
    """The same MLP, loss, SGD, shuffle, last partial batch and validation, in plain JAX."""

    def __init__(self, splits, stats):
        import jax
        import jax.numpy as jnp
        import numpy as np

        self.jax, self.jnp, self.np = jax, jnp, np
        mean, std = stats["mean"], stats["variance"] ** 0.5
        self.x, self.y = jax.device_put(splits.x_train), jax.device_put(splits.y_train.astype(np.int32))
        self.xv, self.yv = jax.device_put(splits.x_valid), jax.device_put(splits.y_valid.astype(np.int32))
        keys = jax.random.split(jax.random.PRNGKey(0), 3)
        self.params = []
        for key, (fan_in, fan_out) in zip(keys, [(784, 300), (300, 100), (100, 10)]):
            limit = (6 / (fan_in + fan_out)) ** 0.5  # Glorot uniform, as Keras's Dense
            self.params += [jax.random.uniform(key, (fan_in, fan_out), minval=-limit, maxval=limit), jnp.zeros(fan_out)]

        def log_probs(params, images):
            h = ((images.astype(jnp.float32) - mean) / std).reshape(images.shape[0], -1)
            h = jax.nn.relu(h @ params[0] + params[1])
            h = jax.nn.relu(h @ params[2] + params[3])
            return jax.nn.log_softmax(h @ params[4] + params[5])

        def loss(params, images, labels):
            lp = log_probs(params, images)
            return -jnp.mean(jnp.take_along_axis(lp, labels[:, None], axis=1)), lp

        def steps(params, sums, batches):
            def step(carry, indices):
                params, (loss_sum, correct) = carry
                (value, lp), grads = jax.value_and_grad(loss, has_aux=True)(params, self.x[indices], self.y[indices])
                params = [p - 0.01 * g for p, g in zip(params, grads)]
                correct = correct + jnp.sum(jnp.argmax(lp, -1) == self.y[indices])
                return (params, (loss_sum + value * indices.shape[0], correct)), None

            return jax.lax.scan(step, (params, sums), batches)[0]

        def validate(params):
            value, lp = loss(params, self.xv, self.yv)
            return value, jnp.mean(jnp.argmax(lp, -1) == self.yv)

        self._steps, self._validate = jax.jit(steps), jax.jit(validate)

    def train_epoch(self, epoch):
        np, jnp = self.np, self.jnp
        order = np.random.default_rng([0, epoch]).permutation(self.y.shape[0]).astype(np.int32)
        full = len(order) // 32
        sums = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        params, sums = self._steps(self.params, sums, order[: full * 32].reshape(full, 32))
        params, sums = self._steps(params, sums, order[full * 32:].reshape(1, -1))
        self.params = params
        val = self._validate(params)
        return {"loss": float(sums[0]) / len(order), "val_accuracy": float(val[1])}


def _summary(times):
    return {"first": times[0], "steady": statistics.median(times[1:]), "epochs": times}


def measure(kinds, epochs, data_dir, backend="jax"):
    """Epoch times per kind, the kinds taking turns each epoch."""
    splits, stats = _setup(data_dir, backend)
    runners = {kind: Floor(splits, stats) if kind == "floor" else _engine(kind, splits, stats) for kind in kinds}
    times = {kind: [] for kind in kinds}
    for epoch in range(1, epochs + 1):
        for kind, runner in runners.items():
            started = time.perf_counter()
            runner.train_epoch(epoch)  # returns Python floats: the work is finished when it returns
            times[kind].append(time.perf_counter() - started)
    return {kind: _summary(values) for kind, values in times.items()}


def tensorflow_child(python, epochs, data_dir):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    command = [python, __file__, "--child", "--epochs", str(epochs)] + (["--data-dir", data_dir] if data_dir else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def full_train(data_dir, cache_dir):
    """Wall time and peak RSS of `fmnist train` (10 epochs) in a child process."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "fmnist", "train", "--quiet", "--output-dir", f"{folder}/run"]
        if data_dir:
            command += ["--data-dir", data_dir]
        env = dict(os.environ, XDG_CACHE_HOME=cache_dir)
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"fmnist train failed: {output}")
        metrics = json.loads(Path(folder, "run", "metrics.json").read_text())
    return {"wall": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "test_accuracy": metrics["test_accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per engine (default 5; >= 2)")
    parser.add_argument("--data-dir")
    default_tf = ROOT / ".venv-tf" / "bin" / "python"
    parser.add_argument("--tensorflow-python", default=str(default_tf) if default_tf.exists() else None,
                        help="an interpreter with tensorflow and fmnist (default .venv-tf/bin/python if present)")
    parser.add_argument("--skip-full-run", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 includes compilation)")

    if args.child:  # keras fit on whatever backend KERAS_BACKEND names
        print(json.dumps(measure(["keras"], args.epochs, args.data_dir, os.environ["KERAS_BACKEND"])["keras"]))
        return

    results = measure(["floor", "fused", "fused-live", "keras-jax"], args.epochs, args.data_dir)
    tf_note = "not installed (make tensorflow creates .venv-tf)"
    if args.tensorflow_python:
        results["keras-tf"], error = tensorflow_child(args.tensorflow_python, args.epochs, args.data_dir)
        tf_note = error or ""
        if results["keras-tf"] is None:
            del results["keras-tf"]

    import jax

    device = jax.devices()[0]
    print(f"device: {device.platform} {device.device_kind}; {os.cpu_count()} CPUs; epochs per engine {args.epochs}")
    floor = results["floor"]["steady"]
    print(f"{'engine':<12} {'first s':>8} {'steady s':>9} {'x floor':>8}")
    for kind, row in results.items():
        print(f"{kind:<12} {row['first']:>8.3f} {row['steady']:>9.3f} {row['steady'] / floor:>8.2f}")
    if "keras-tf" not in results:
        print(f"keras-tf     {tf_note}")
    fused = results["fused"]["steady"]
    ratios = {
        "fused / floor (target <= 1.10)": fused / floor,
        "keras-jax / fused (target >= 1.4)": results["keras-jax"]["steady"] / fused,
        "fused-live / fused - 1, progress cost (target < 5%)": results["fused-live"]["steady"] / fused - 1,
    }
    if "keras-tf" in results:
        ratios["keras-tf / fused (target >= 4)"] = results["keras-tf"]["steady"] / fused
    for name, value in ratios.items():
        print(f"{name}: {value:.1%}" if "%" in name else f"{name}: {value:.2f}")
    results["ratios"] = ratios

    if not args.skip_full_run:
        with tempfile.TemporaryDirectory() as cache:
            for label in ("cold compilation cache", "warm compilation cache"):
                run = full_train(args.data_dir, cache)
                results[f"full train, {label}"] = run
                print(f"full fmnist train ({label}): {run['wall']:.1f} s wall, peak RSS {run['peak_rss_mb']:.0f} MB, "
                      f"test accuracy {run['test_accuracy']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
