"""Training engines, chosen by name.

``keras``   ``model.fit`` one epoch at a time, on any backend: the reference.
``fused``   one model, a whole epoch as one compiled XLA program (JAX only).
``members`` many models of one structure and optimizer in one compiled program: the fused epoch
            ``jax.vmap``-ed over a leading member axis, sharded over every device (JAX only).

All of them see the same batches in the same order (batches.py), and the compiled two run the same
stateless step (program.py), so a member agrees with a run of ``fmnist train``.
"""

from __future__ import annotations

import importlib

from fmnist.errors import UsageError

# name -> "module:class", imported on use: the keras engine must not import JAX on other backends.
ENGINES = {
    "keras": "fmnist.engines.fit:KerasEngine",
    "fused": "fmnist.engines.fused:FusedEngine",
    "members": "fmnist.engines.members:MembersEngine",
}
NEEDS_JAX = ("fused", "members")


def resolve(name: str, backend: str) -> str:
    """``auto`` becomes the fastest engine for one model on ``backend``; others are checked."""
    if name == "auto":
        return "fused" if backend == "jax" else "keras"
    if name not in ENGINES:
        raise UsageError(f"engine {name!r}: unknown; choose from auto, {', '.join(ENGINES)}", "engine")
    if name in NEEDS_JAX and backend != "jax":
        raise UsageError(f"engine {name!r} needs the JAX backend (KERAS_BACKEND is {backend!r}); choose 'keras'", "engine")
    return name


def get(name: str):
    """The engine class registered under ``name``."""
    module, _, attribute = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def create(name: str, model, splits, config, progress):
    """A single-model engine (``auto``, ``fused`` or ``keras``) for ``model``."""
    import keras

    return get(resolve(name, keras.backend.backend()))(model, splits, config, progress)
