"""The members of a study: the grid (model x optimizer x method x learning rate x seed) in a fixed
order, the cells added beyond its edges, and how the members are cut into compiled programs (one network
and one optimizer each).

The default learning rates are half-decades (1, 0.3, 0.1, …, 1e-5), so no optimum hides in a hole; when
a method's best rate is the lowest or highest it tried, ``grid_extension`` adds the next half-decade
beyond it (``SweepConfig.extend_grid`` times per side at most).
"""

from __future__ import annotations

import dataclasses
import math

from fmnist.config import OPTIMIZERS, SweepConfig
from fmnist.reporting import tables


@dataclasses.dataclass(frozen=True)
class StudyMember:
    index: int
    method: str
    optimizer: str
    learning_rate: float
    seed: int
    name: str  # its run folder's name, when its model is kept
    model: str = "mlp"  # the network (config.MODELS)


def members_of(config: SweepConfig, kind: str) -> list[StudyMember]:
    """The grid in a fixed order (model, optimizer, method, learning rate, seed), then the cells added
    beyond its edges in the order they were added, each with every seed. A member of another network
    than the mlp has its model's name first in its own."""
    seeds = range(config.seed, config.seed + config.seeds)
    grid = [(model, optimizer, method, rate, seed) for model in config.models for optimizer in config.optimizers
            for method in config.methods for rate in config.learning_rates for seed in seeds]
    grid += [(model, optimizer, method, rate, seed) for model, optimizer, method, rate in config.extra_rates
             for seed in seeds]
    return [StudyMember(index, method, optimizer, float(rate), seed, _name(kind, model, method, optimizer, rate, seed), model)
            for index, (model, optimizer, method, rate, seed) in enumerate(grid)]


def _name(kind: str, model: str, method: str, optimizer: str, rate: float, seed: int) -> str:
    name = f"{method}-seed{seed}" if kind == "compare" else f"{method}-{optimizer}-lr{rate:g}-seed{seed}"
    return name if model == "mlp" else f"{model}-{name}"


def lines_of(config: SweepConfig) -> list[tuple[str, str]]:
    """The study's (model, optimizer) pairs, in member order: each is a program's network and optimizer,
    and a line of the study's answer."""
    return [(model, optimizer) for model in config.models for optimizer in config.optimizers]



# On the CPU a program is fastest with about four members per device (one device per core): more
# members stream more weights through the caches at every step (docs/benchmarks.md, 2 cores: 0.63 s
# per member-epoch with 4 per device, 0.99 with 8, 1.54 with 16).
CPU_MEMBERS_PER_DEVICE = 4


def plan_programs(config: SweepConfig, members: list[StudyMember]) -> list[dict]:
    """The members of each network and optimizer, cut into programs of at most ``members_per_program``
    (by default as many as fit in half the free memory, and on the CPU four per device), of even sizes.
    A program of another network than the mlp records it (``"model"``) and has its name first."""
    import jax

    from fmnist.engines.member_state import memory_budget, per_member_bytes
    from fmnist.model import activations_per_image, trainable_parameters

    devices = jax.device_count()
    programs = []
    for model, optimizer in lines_of(config):
        indices = [member.index for member in members if (member.model, member.optimizer) == (model, optimizer)]
        if not indices:  # a grid extension may add members of some optimizers only
            continue
        cap = config.members_per_program
        if cap is None:
            state = 4 * trainable_parameters(model) * (1 + OPTIMIZERS[optimizer].slots)
            one = per_member_bytes(state, config.batch_size, activations_per_image(model))
            cap = max(devices, memory_budget() // one // devices * devices)
            if jax.default_backend() == "cpu":
                cap = min(cap, CPU_MEMBERS_PER_DEVICE * devices)
        count = -(-len(indices) // cap)
        size = -(-len(indices) // count)
        line = tables.line_name(model, optimizer)
        for number, start in enumerate(range(0, len(indices), size), 1):
            program = {"name": line if count == 1 else f"{line}-{number}", "optimizer": optimizer,
                       "members": indices[start: start + size]}
            programs.append(program if model == "mlp" else program | {"model": model})
    return programs


def next_rate(rate: float, direction: int) -> float:
    """The half-decade grid point (1 or 3 times a power of ten) beyond ``rate``: below it for direction -1,
    above for +1."""
    target = math.log10(rate) + 0.5 * direction
    points = [mantissa * 10.0 ** exponent for exponent in range(math.floor(target) - 1, math.floor(target) + 2)
              for mantissa in (1, 3)]
    beyond = [point for point in points if (point < rate * 0.99 if direction < 0 else point > rate * 1.01)]
    chosen = min(beyond, key=lambda point: abs(math.log10(point) - target))
    return float(f"{chosen:.3g}")


def grid_extension(config: SweepConfig, rows: list[dict]) -> tuple[tuple[str, str, str, float], ...]:
    """The cells to add: for each model, optimizer and method whose best rate is the lowest (highest)
    tried, the next half-decade below (above) it, while fewer than ``extend_grid`` were added on that side."""
    summary = tables.summary_rows(rows)
    low, high = min(config.learning_rates), max(config.learning_rates)
    added = []
    for model, optimizer in lines_of(config):
        for method in config.methods:
            cell = tables.best_rate(summary, method, optimizer, model)
            edge = tables.edge_of(summary, method, optimizer, cell["learning_rate"], model) if cell else ""
            if not edge:
                continue
            direction = -1 if edge == "lowest" else 1
            beyond = [rate for *extra_cell, rate in config.extra_rates
                      if tuple(extra_cell) == (model, optimizer, method) and (rate < low if direction < 0 else rate > high)]
            if len(beyond) < config.extend_grid:
                added.append((model, optimizer, method, next_rate(float(cell["learning_rate"]), direction)))
    return tuple(added)


def describe_grid(config: SweepConfig) -> str:
    def count(values, word):
        return f"{len(values)} {word}{'s' * (len(values) != 1)}"

    models = [count(config.models, "model")] if config.shows_models else []
    return " x ".join([*models, count(config.methods, "method"), count(config.learning_rates, "learning rate"),
                       count(config.optimizers, "optimizer"), count(range(config.seeds), "seed")])
