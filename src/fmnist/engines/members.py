"""The ``members`` engine: many models of one network and optimizer, trained in one compiled program.

The fused epoch (program.py) is ``jax.vmap``-ed over a leading member axis of the stacked stateless
variables. Each member carries its own weights (initialized from its seed exactly as ``fmnist train``
initializes: member_state.py), optimizer state with its own learning rate (an optimizer variable),
normalization settings (``MemberNormalization``'s variables), batch-normalization statistics when its
network has them (moving averages updated in training and used in evaluation, as Keras does) and shuffle
order (``shuffle_order(seed, epoch)``). The training data are put on the devices once and shared by every
member.

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

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fmnist.engines import batches
from fmnist.engines.member_state import InitialState, Member, mesh
from fmnist.engines.program import Program, pad_blocks


@functools.cache
def _functions(optimizer: str, network: str):
    """The compiled pieces of a program, shared by every program of the same optimizer and network (and
    so compiled once per shape): the group model, steps, evaluation, and freezing."""
    from fmnist.model import build_member_model

    model = build_member_model(optimizer, network)
    program = Program(model)
    steps = jax.jit(jax.vmap(program.steps, in_axes=(0, 0, None, None, 0)))
    evaluate = jax.jit(jax.vmap(program.evaluate_blocks, in_axes=(0, None, None)))
    keep = jax.jit(lambda alive, new, old: jax.tree.map(
        lambda n, o: jnp.where(alive.reshape(-1, *[1] * (n.ndim - 1)), n, o), new, old))
    return model, steps, evaluate, keep


METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class MembersEngine:
    """Trains ``members`` (sharing ``optimizer`` and the network ``model``) epoch by epoch; metrics come
    back as arrays by member.

    The program's rows are its living members in member order, padded to whole devices by repeating the
    last (``layout``). A member that diverges leaves the program: its last finite state is kept on the
    host and the living are gathered into a new layout, so it costs nothing from then on (a compiled
    program per row count, which is a multiple of the devices). The living members go on as they would
    have, but for the last bits: XLA may pick other kernels for another row count per device. Every
    process computes the same layout, so resumed and multi-process studies match an uninterrupted one.
    """

    name = "members"

    def __init__(self, optimizer: str, members: list[Member], stats: dict[str, dict], splits, batch_size: int,
                 progress, device_mesh: Mesh | None = None, retire: bool = True, model: str = "mlp"):
        self.members, self.batch_size, self.progress = members, batch_size, progress
        self.mesh = device_mesh or mesh()
        self.retires = retire
        self.by_member = NamedSharding(self.mesh, PartitionSpec("members"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.model, self._steps, self._evaluate, self._keep = _functions(optimizer, model)
        self.count = len(splits.y_train)
        self.x, self.y = self._replicate(splits.x_train), self._replicate(splits.y_train.astype(np.int32))
        self.valid = tuple(self._replicate(array) for array in pad_blocks(splits.x_valid, splits.y_valid))
        self.test = tuple(self._replicate(array) for array in pad_blocks(splits.x_test, splits.y_test))
        self.alive = np.ones(len(members), bool)
        self.frozen: dict[int, dict[str, np.ndarray]] = {}  # a member that left the program -> its named arrays
        self._lay_out(np.arange(len(members)))
        initial = InitialState(optimizer, stats, members, model)
        self.state = self._shard_members(initial.state)

    # -- placing arrays ------------------------------------------------------------------------------
    def _lay_out(self, active: np.ndarray) -> None:
        devices = self.mesh.devices.size
        self.active = np.asarray(active, np.int64)
        padded = -(-len(self.active) // devices) * devices
        self.layout = np.concatenate([self.active, np.repeat(self.active[-1:], padded - len(self.active))])

    def _replicate(self, array: np.ndarray):
        return jax.make_array_from_callback(array.shape, self.replicated, lambda index: array[index])

    def _shard_members(self, make):
        """A row-sharded global array from ``make(members)``, which builds the rows of those members (an
        array of member indices, in layout order); or a tree of them when ``make`` is a tree of such
        functions. Each process builds only the rows on its own devices."""
        def place(make_rows):
            first = make_rows(self.layout[:1])
            shape = (len(self.layout), *first.shape[1:])

            def rows(index):
                start, stop, _ = index[0].indices(len(self.layout))
                return make_rows(self.layout[start:stop])[(slice(None), *index[1:])]

            return jax.make_array_from_callback(shape, self.by_member, rows)

        return jax.tree.map(place, make, is_leaf=callable)

    def gather(self, array) -> np.ndarray:
        """A row-sharded array of values by member (NaN for members out of the program), on every process."""
        if jax.process_count() > 1:
            array = multihost_utils.process_allgather(array, tiled=True)
        values = np.full(len(self.members), np.nan)
        values[self.active] = np.asarray(array)[: len(self.active)]
        return values

    def local_members(self) -> list[int]:
        """Indices of the members whose state this process checkpoints: the program's rows on its devices,
        and the members that left the program (every process holds those; member m is process m mod N's)."""
        first = jax.tree.leaves(self.state)[0]
        owned = {member for member in self.frozen if member % jax.process_count() == jax.process_index()}
        for shard in first.addressable_shards:
            start, stop, _ = shard.index[0].indices(len(self.layout))
            owned.update(self.layout[start:min(stop, len(self.active))].tolist())
        return sorted(owned)

    # -- training ------------------------------------------------------------------------------------
    def _orders(self, epoch: int):
        return lambda rows: np.stack([batches.shuffle_order(self.members[m].seed, epoch, self.count)
                                      for m in rows]).astype(np.int32)

    def train_epoch(self, epoch: int) -> dict[str, np.ndarray]:
        """One epoch for every member in the program; returns loss, accuracy, val_loss, val_accuracy by
        member (NaN for those no longer in it).

        A member with a non-finite value among them is frozen from here on (``alive`` turns False) and
        leaves the program (unless ``retire`` was turned off).
        """
        if not len(self.active):  # every member diverged: nothing to compute
            return {key: np.full(len(self.members), np.nan) for key in METRICS}
        orders = self._shard_members(self._orders(epoch))
        self.progress.start(epoch, batches.steps_per_epoch(self.count, self.batch_size))
        zeros = self._shard_members(lambda rows: np.zeros(len(rows), np.float32))
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
            "loss": loss_sum / self.count,
            "accuracy": correct / self.count,
            "val_loss": self.gather(val_loss),
            "val_accuracy": self.gather(val_accuracy),
        }
        self.alive &= np.all([np.isfinite(values) for values in metrics.values()], axis=0)
        self.state = self._keep(self._shard_members(lambda rows: self.alive[rows]), state, self.state)
        if self.retires and not self.alive[self.active].all():
            self._retire()
        return metrics

    def _retire(self) -> None:
        """Move the members that diverged out of the program. Their last finite state is copied to every
        process (host arrays), and the living members' rows are gathered into the new layout on the
        devices. Every process computes the same layout (the alive flags are gathered everywhere), so one
        process with two devices and two processes with one device each lay out the members alike."""
        row_of = {member: row for row, member in enumerate(self.layout[: len(self.active)].tolist())}
        dead = self.active[~self.alive[self.active]].tolist()
        copied = jax.tree.leaves(_take(self.state, [row_of[member] for member in dead], self.replicated))
        for position, member in enumerate(dead):
            self.frozen[member] = {key: np.asarray(leaf.addressable_data(0))[position]
                                   for key, leaf in zip(self._keys(), copied)}
        self._lay_out(self.active[self.alive[self.active]])
        if len(self.active):
            self.state = _take(self.state, [row_of[member] for member in self.layout.tolist()], self.by_member)

    def test_metrics(self) -> dict[str, np.ndarray]:
        if not len(self.active):
            return {key: np.full(len(self.members), np.nan) for key in ("test_loss", "test_accuracy")}
        loss, accuracy = self._evaluate(self.state, *self.test)
        return {"test_loss": self.gather(loss), "test_accuracy": self.gather(accuracy)}

    # -- state for checkpoints and saved models ------------------------------------------------------
    def _keys(self) -> list[str]:
        return [f"{group}_{index}" for group, values in zip(("trainable", "non_trainable", "optimizer"), self.state)
                for index in range(len(values))]

    def local_state(self) -> dict[str, np.ndarray]:
        """This process's members' variables as named host arrays (member axis first, in the order of
        ``local_members``), for a checkpoint: the program's rows, and the members that left it."""
        owned = self.local_members()
        living = {member: row for row, member in enumerate(self.layout[: len(self.active)].tolist())}
        in_program = [living[member] for member in owned if member not in self.frozen]
        arrays = {}
        for key, value in zip(self._keys(), jax.tree.leaves(self.state)):
            taken = iter(_local_rows(value, in_program, len(self.layout)))
            rows = [self.frozen[member][key] if member in self.frozen else next(taken) for member in owned]
            arrays[key] = np.stack(rows) if rows else _local_rows(value, [], len(self.layout))
        return arrays

    def load_state(self, arrays_by_member: dict[int, dict[str, np.ndarray]], alive: np.ndarray) -> None:
        """Replace the state with saved values: ``arrays_by_member[m]`` holds member m's named arrays."""
        self.alive = np.array(alive, bool)
        if self.retires:  # every process reads every process's file: each knows the members that left
            self.frozen = {m: arrays for m, arrays in arrays_by_member.items() if not self.alive[m]}
            self._lay_out(np.flatnonzero(self.alive))
        self._set_rows(arrays_by_member)

    def _set_rows(self, arrays_by_member: dict[int, dict[str, np.ndarray]]) -> None:
        if not len(self.active):
            return
        def make(key):
            return lambda rows: np.stack([arrays_by_member[m][key] for m in rows])

        keys = iter(self._keys())
        self.state = self._shard_members(tuple([make(next(keys)) for _ in values] for values in self.state))

    def member_state(self, arrays: dict[str, np.ndarray], row: int) -> tuple[list, list, list]:
        """One member's (trainable, non_trainable, optimizer) values from ``local_state``-style arrays."""
        counts = [len(values) for values in self.state]
        return tuple([arrays[f"{group}_{i}"][row] for i in range(count)]
                     for group, count in zip(("trainable", "non_trainable", "optimizer"), counts))


def _take(state, rows: list[int], sharding):
    """``state``'s rows ``rows`` (a tree of row-sharded arrays), gathered by XLA into ``sharding``: rows
    move between devices, and between processes when several share the mesh."""
    index = np.asarray(rows, np.int32)
    return jax.jit(lambda tree: jax.tree.map(lambda leaf: leaf[index], tree), out_shardings=sharding)(state)


def _local_rows(array, owned: list[int], padded: int) -> np.ndarray:
    rows = {}
    for shard in array.addressable_shards:
        start, stop, _ = shard.index[0].indices(padded)
        data = np.asarray(shard.data)
        for offset, member in enumerate(range(start, stop)):
            rows.setdefault(member, data[offset])
    return np.stack([rows[member] for member in owned]) if owned else np.zeros((0, *array.shape[1:]), array.dtype)
