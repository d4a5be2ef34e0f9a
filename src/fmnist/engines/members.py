"""The ``members`` engine: many models of one structure and optimizer, trained in one compiled program.

The fused epoch (program.py) is ``jax.vmap``-ed over a leading member axis of the stacked stateless
variables. Each member carries its own weights (initialized from its seed exactly as ``fmnist train``
initializes), optimizer state with its own learning rate (an optimizer variable), normalization
settings (``MemberNormalization``'s variables) and shuffle order (``shuffle_order(seed, epoch)``). The
training data are put on the devices once and shared by every member.

A member whose epoch ends with a non-finite loss or metric is frozen: it goes back to its state at
the start of that epoch and stays there (its later epochs are computed and thrown away), while the
others go on. Freezing once per epoch, not per step, keeps the step itself the one ``fused`` runs:
a select over every weight at every step cost about a fifth of the epoch on the CPU.

The member axis is sharded over a ``jax.sharding.Mesh`` of every device, those of other processes too
when several hosts joined through ``jax.distributed``; the data are replicated. Each process builds
and reads only the members on its own devices; per-member metrics (a few numbers each) are gathered
to every process.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fmnist.engines import batches
from fmnist.engines.program import Program, pad_blocks, read_state


@dataclasses.dataclass(frozen=True)
class Member:
    """One model of a study: its normalization (method and fitted statistics), learning rate and seed."""

    method: str
    learning_rate: float
    seed: int


def mesh() -> Mesh:
    """Every device of every process, in one line: the member axis is split along it."""
    return Mesh(np.array(jax.devices()), ("members",))


def per_member_bytes(state_bytes: int, batch_size: int) -> int:
    """What one more member costs while training: its state about four times over (weights, gradients,
    the updated copy, the scan's carry) and its activations for a batch and an evaluation block."""
    from fmnist.engines.program import EVAL_BLOCK

    widths = 28 * 28 + 300 + 100 + 10
    return 4 * state_bytes + 4 * widths * (3 * batch_size + 2 * EVAL_BLOCK)


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


@functools.cache
def _functions(optimizer: str):
    """The compiled pieces of a program, shared by every program of the same optimizer (and so
    compiled once per shape): the group model, steps, evaluation, and freezing."""
    from fmnist.model import build_member_model

    model = build_member_model(optimizer)
    program = Program(model)
    steps = jax.jit(jax.vmap(program.steps, in_axes=(0, 0, None, None, 0)))
    evaluate = jax.jit(jax.vmap(program.evaluate_blocks, in_axes=(0, None, None)))
    keep = jax.jit(lambda alive, new, old: jax.tree.map(
        lambda n, o: jnp.where(alive.reshape(-1, *[1] * (n.ndim - 1)), n, o), new, old))
    return model, steps, evaluate, keep


class MembersEngine:
    """Trains ``members`` (sharing ``optimizer``) epoch by epoch; metrics come back as arrays by member."""

    name = "members"

    def __init__(self, optimizer: str, members: list[Member], stats: dict[str, dict], splits, batch_size: int,
                 progress, device_mesh: Mesh | None = None):
        self.members, self.batch_size, self.progress = members, batch_size, progress
        self.mesh = device_mesh or mesh()
        devices = self.mesh.devices.size
        self.padded = -(-len(members) // devices) * devices  # a whole number of members per device
        self.by_member = NamedSharding(self.mesh, PartitionSpec("members"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.model, self._steps, self._evaluate, self._keep = _functions(optimizer)
        self.count = len(splits.y_train)
        self.x, self.y = self._replicate(splits.x_train), self._replicate(splits.y_train.astype(np.int32))
        self.valid = tuple(self._replicate(array) for array in pad_blocks(splits.x_valid, splits.y_valid))
        self.test = tuple(self._replicate(array) for array in pad_blocks(splits.x_test, splits.y_test))
        self._initial = _InitialState(optimizer, stats, members)
        self.state = self._shard_members(self._initial.state)
        self.alive = np.ones(len(members), bool)

    # -- placing arrays ------------------------------------------------------------------------------
    def _replicate(self, array: np.ndarray):
        return jax.make_array_from_callback(array.shape, self.replicated, lambda index: array[index])

    def _shard_members(self, make):
        """A member-sharded global array from ``make(rows)``, which builds the rows (a slice of members)
        this process holds; or a tree of them when ``make`` is a tree of such functions."""
        def place(make_rows):
            first = make_rows(slice(0, 1))
            shape = (self.padded, *first.shape[1:])

            def rows(index):
                wanted = index[0]
                start, stop, _ = wanted.indices(self.padded)
                real = np.minimum(np.arange(start, stop), len(self.members) - 1)  # padding repeats the last
                block = make_rows(slice(int(real[0]), int(real[-1]) + 1))
                return block[real - real[0]][(slice(None), *index[1:])]

            return jax.make_array_from_callback(shape, self.by_member, rows)

        return jax.tree.map(place, make, is_leaf=callable)

    def gather(self, array) -> np.ndarray:
        """A member-sharded array on every process, the padding dropped."""
        if jax.process_count() > 1:
            array = multihost_utils.process_allgather(array, tiled=True)
        return np.asarray(array)[: len(self.members)]

    def local_members(self) -> list[int]:
        """Indices of the (real) members whose state lives on this process's devices."""
        first = jax.tree.leaves(self.state)[0]
        owned = set()
        for shard in first.addressable_shards:
            start, stop, _ = shard.index[0].indices(self.padded)
            owned.update(range(start, min(stop, len(self.members))))
        return sorted(owned)

    # -- training ------------------------------------------------------------------------------------
    def _orders(self, epoch: int):
        seeds = [member.seed for member in self.members]
        return lambda rows: np.stack([batches.shuffle_order(seed, epoch, self.count) for seed in seeds[rows]]).astype(np.int32)

    def train_epoch(self, epoch: int) -> dict[str, np.ndarray]:
        """One epoch for every member; returns loss, accuracy, val_loss, val_accuracy by member.

        A member with a non-finite value among them is frozen from here on (``alive`` turns False).
        """
        orders = self._shard_members(self._orders(epoch))
        self.progress.start(epoch, batches.steps_per_epoch(self.count, self.batch_size))
        zeros = self._shard_members(lambda rows: np.zeros(len(self.alive[rows]), np.float32))
        state, sums, done = self.state, (zeros, zeros.astype(jnp.int32)), 0
        for chunk in batches.chunks(orders, self.batch_size, self.progress.live):
            state, sums = self._steps(state, sums, self.x, self.y, chunk)
            done += chunk.shape[1]
            if self.progress.live:
                jax.block_until_ready(sums)
                self.progress.advance(done)
        val_loss, val_accuracy = self._evaluate(state, *self.valid)
        loss_sum, correct = (self.gather(value) for value in sums)
        metrics = {
            "loss": loss_sum.astype(np.float64) / self.count,
            "accuracy": correct / self.count,
            "val_loss": self.gather(val_loss).astype(np.float64),
            "val_accuracy": self.gather(val_accuracy).astype(np.float64),
        }
        self.alive &= np.all([np.isfinite(values) for values in metrics.values()], axis=0)
        self.state = self._keep(self._shard_members(lambda rows: self.alive[rows]), state, self.state)
        return metrics

    def test_metrics(self) -> dict[str, np.ndarray]:
        loss, accuracy = self._evaluate(self.state, *self.test)
        return {"test_loss": self.gather(loss).astype(np.float64), "test_accuracy": self.gather(accuracy).astype(np.float64)}

    # -- state for checkpoints and saved models ------------------------------------------------------
    def local_state(self) -> dict[str, np.ndarray]:
        """This process's members' variables as named host arrays (member axis first), for a checkpoint."""
        owned = self.local_members()
        arrays = {}
        for group, values in zip(("trainable", "non_trainable", "optimizer"), self.state):
            for index, value in enumerate(values):
                arrays[f"{group}_{index}"] = _local_rows(value, owned, self.padded)
        return arrays

    def load_state(self, arrays_by_member: dict[int, dict[str, np.ndarray]], alive: np.ndarray) -> None:
        """Replace the state with saved values: ``arrays_by_member[m]`` holds member m's named arrays."""
        def make(group, index):
            key = f"{group}_{index}"
            return lambda rows: np.stack([arrays_by_member[m][key] for m in range(rows.start, rows.stop)])

        groups = ("trainable", "non_trainable", "optimizer")
        self.state = self._shard_members(tuple(
            [make(group, index) for index in range(len(values))] for group, values in zip(groups, self.state)))
        self.alive = np.array(alive, bool)

    def member_state(self, arrays: dict[str, np.ndarray], row: int) -> tuple[list, list, list]:
        """One member's (trainable, non_trainable, optimizer) values from ``local_state``-style arrays."""
        counts = [len(values) for values in self.state]
        return tuple([arrays[f"{group}_{i}"][row] for i in range(count)]
                     for group, count in zip(("trainable", "non_trainable", "optimizer"), counts))


def _local_rows(array, owned: list[int], padded: int) -> np.ndarray:
    rows = {}
    for shard in array.addressable_shards:
        start, stop, _ = shard.index[0].indices(padded)
        data = np.asarray(shard.data)
        for offset, member in enumerate(range(start, stop)):
            rows.setdefault(member, data[offset])
    return np.stack([rows[member] for member in owned]) if owned else np.zeros((0, *array.shape[1:]), array.dtype)


class _InitialState:
    """Each member's starting variables, as functions of a slice of members (for ``_shard_members``).

    Weights: ``keras.utils.set_random_seed(seed)`` then the model is built, as ``fmnist train`` does, so
    a member starts where the run with its seed starts (one build per distinct seed). Normalization:
    normalization.member_settings. Optimizer: the fresh optimizer's variables with the member's rate.
    """

    def __init__(self, optimizer: str, stats: dict[str, dict], members: list[Member]):
        import keras

        from fmnist import normalization
        from fmnist.model import build_member_model

        self.members = members
        self._weights = {}
        for seed in sorted({member.seed for member in members}):
            keras.utils.set_random_seed(seed)
            model = build_member_model(optimizer)
            trainable, _, optimizer_values = read_state(model)
            self._weights[seed] = [np.asarray(value) for value in trainable]
        self._non_trainable_names = [variable.name for variable in model.non_trainable_variables]
        self._optimizer_names = [variable.name for variable in model.optimizer.variables]
        self._optimizer_values = [np.asarray(value) for value in optimizer_values]
        self._settings = {method: normalization.member_settings(method, stats[method])
                          for method in {member.method for member in members}}
        trainable_count = len(self._weights[members[0].seed])
        self.state = (
            [self._trainable(i) for i in range(trainable_count)],
            [self._non_trainable(name) for name in self._non_trainable_names],
            [self._optimizer(i, name) for i, name in enumerate(self._optimizer_names)],
        )

    def _trainable(self, index):
        return lambda rows: np.stack([self._weights[member.seed][index] for member in self.members[rows]])

    def _non_trainable(self, name):
        return lambda rows: np.stack([self._settings[member.method][name] for member in self.members[rows]])

    def _optimizer(self, index, name):
        if name == "learning_rate":
            return lambda rows: np.array([member.learning_rate for member in self.members[rows]], np.float32)
        value = self._optimizer_values[index]
        return lambda rows: np.repeat(value[None], len(self.members[rows]), axis=0)
