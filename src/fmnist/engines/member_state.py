"""What a member of the ``members`` engine (members.py) is, what it starts from, and what it costs.

``Member`` names one model of a program: its normalization, learning rate and seed. ``InitialState``
builds each member's starting variables exactly as ``fmnist train`` starts the run with that seed.
``mesh`` is the line of devices the member axis is split along. ``per_member_bytes`` and
``memory_budget`` are the memory model that decides how many members one program holds
(training.grid.plan_programs): half the free device memory, at about four copies of a member's state
plus its activations for a batch and an evaluation block.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
from jax.sharding import Mesh

from fmnist import normalization
from fmnist.engines.program import EVAL_BLOCK, read_state


@dataclasses.dataclass(frozen=True)
class Member:
    """One model of a program: its normalization (method and fitted statistics), learning rate and seed
    (the network and optimizer are the program's)."""

    method: str
    learning_rate: float
    seed: int


def mesh() -> Mesh:
    """Every device of every process, in one line: the member axis is split along it."""
    return Mesh(np.array(jax.devices()), ("members",))


def per_member_bytes(state_bytes: int, batch_size: int, activations: int) -> int:
    """What one more member costs while training: its state about four times over (weights, gradients,
    the updated copy, the scan's carry) and its ``activations`` (float32 values per image: the network's,
    ``model.activations_per_image``) for a batch and an evaluation block."""
    return 4 * state_bytes + 4 * activations * (3 * batch_size + 2 * EVAL_BLOCK)


def memory_budget() -> int:
    """Bytes the members of one program may use: half the free memory of the devices (all of them)."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)) // 2 * jax.device_count()
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 4 << 30
    return available // 2


class InitialState:
    """Each member's starting variables, as functions of member indices (for ``MembersEngine._shard_members``).

    Weights: ``keras.utils.set_random_seed(seed)`` then the model is built, as ``fmnist train`` does, so
    a member starts where the run with its seed starts (one build per distinct seed). Normalization:
    normalization.member_settings. The network's own non-trainable variables (batch normalization's
    moving mean and variance) start as Keras starts them. Optimizer: the fresh optimizer's variables with
    the member's rate.
    """

    def __init__(self, optimizer: str, stats: dict[str, dict], members: list[Member], network: str = "mlp"):
        import keras

        from fmnist.model import build_member_model

        self.members = members
        self._weights = {}
        for seed in sorted({member.seed for member in members}):
            keras.utils.set_random_seed(seed)
            model = build_member_model(optimizer, network)
            trainable, non_trainable, optimizer_values = read_state(model)
            self._weights[seed] = [np.asarray(value) for value in trainable]
        normalizing = {id(variable) for variable in model.get_layer("member_normalization").non_trainable_variables}
        self._non_trainable_starts = [(variable.name if id(variable) in normalizing else None, np.asarray(value))
                               for variable, value in zip(model.non_trainable_variables, non_trainable)]
        self._optimizer_names = [variable.name for variable in model.optimizer.variables]
        self._optimizer_values = [np.asarray(value) for value in optimizer_values]
        self._settings = {method: normalization.member_settings(method, stats[method])
                          for method in {member.method for member in members}}
        trainable_count = len(self._weights[members[0].seed])
        self.state = (
            [self._trainable(i) for i in range(trainable_count)],
            [self._non_trainable(name, value) for name, value in self._non_trainable_starts],
            [self._optimizer(i, name) for i, name in enumerate(self._optimizer_names)],
        )

    def _trainable(self, index):
        return lambda rows: np.stack([self._weights[self.members[m].seed][index] for m in rows])

    def _non_trainable(self, name, value):
        if name is None:  # the network's own (batch normalization's statistics): the same start for every member
            return lambda rows: np.repeat(value[None], len(rows), axis=0)
        return lambda rows: np.stack([self._settings[self.members[m].method][name] for m in rows])

    def _optimizer(self, index, name):
        if name == "learning_rate":
            return lambda rows: np.array([self.members[m].learning_rate for m in rows], np.float32)
        value = self._optimizer_values[index]
        return lambda rows: np.repeat(value[None], len(rows), axis=0)
