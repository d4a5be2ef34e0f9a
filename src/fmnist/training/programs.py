"""One program of a study: its members trained together epoch by epoch (engines.members), a checkpoint
after every epoch, a line of progress, and its test metrics at the end."""

from __future__ import annotations

import time

import numpy as np

from fmnist.errors import Interrupted
from fmnist.reporting import events
from fmnist.runtime import any_process
from fmnist.store import program_files, studies
from fmnist.training.progress import Progress


def train_program(program, label, config, folder, members, stats, splits, state, clock, log, live, should_stop,
                   kind) -> None:
    from fmnist.engines.member_state import Member
    from fmnist.engines.members import MembersEngine

    name, indices = program["name"], program["members"]
    saved = program_files.read_progress(folder, name)
    if saved:
        for index, history in zip(indices, saved["history"]):
            state.histories[index] = history
        clock.add(sum(len(state.histories[index]) for index in indices), saved["seconds"])
    if saved and saved["done"]:
        for position, index in enumerate(indices):
            state.tests[index] = {key: values[position] for key, values in saved["test"].items()}
        events.write_members(folder, config, members, indices, state.histories, state.tests)
        log(f"{label} finished earlier: {len(indices)} members")
        return
    progress = Progress(config.epochs, live=live)
    engine = MembersEngine(program["optimizer"], [Member(members[i].method, members[i].learning_rate, members[i].seed)
                                                  for i in indices], stats, splits, config.batch_size, progress,
                           model=program.get("model", "mlp"))
    first, seconds = 1, 0.0
    if saved:
        engine.load_state(program_files.read_program_state(folder, name, saved["epoch"]), saved["alive"])
        first, seconds = saved["epoch"] + 1, saved["seconds"]
        log(f"{label} resuming after epoch {saved['epoch']}")
    events.write_members(folder, config, members, indices, state.histories)  # the checkpointed epochs
    for epoch in range(first, config.epochs + 1):
        alive = engine.alive.copy()
        started = time.perf_counter()
        metrics = engine.train_epoch(epoch)
        elapsed = time.perf_counter() - started
        seconds += elapsed
        for position, index in enumerate(indices):
            if alive[position]:
                state.histories[index].append(
                    {"epoch": epoch, **{key: float(values[position]) for key, values in metrics.items()},
                     "epoch_seconds": elapsed})
        program_files.save_program(folder, name, engine, epoch, [state.histories[i] for i in indices], seconds)
        progress.clear()
        eta = clock.add(int(alive.sum()), elapsed)
        log(f"{label} epoch {epoch}/{config.epochs} {elapsed:.1f}s: "
            f"{_epoch_summary(members, indices, metrics, alive, engine.alive)}; {eta}")
        state.write(now=False)
        events.append_members(folder, members, indices, state.histories, epoch)
        stop = any_process(should_stop() if should_stop else None)
        if stop and epoch < config.epochs:
            state.write()  # the tables show where it stopped
            raise Interrupted(stop, f"after epoch {epoch} of program {name}",
                              f"{studies.KIND_COMMANDS[kind]} --resume {folder}")
    test = engine.test_metrics()
    for position, index in enumerate(indices):
        state.tests[index] = {key: float(values[position]) for key, values in test.items()}
    program_files.finish_program(folder, name, [state.histories[i] for i in indices], engine.alive, seconds,
                              {key: values.tolist() for key, values in test.items()})
    events.write_members(folder, config, members, indices, state.histories, state.tests)
    state.write()
    if config.save_models == "none":  # no model of it will be kept: its states (1.7 GB for the default grid) go now
        import jax

        program_files.remove_program_states(folder, jax.process_index(), name)


def _epoch_summary(members, indices, metrics, alive_before, alive_after) -> str:
    val = np.where(alive_before, metrics["val_accuracy"], np.nan)
    text = f"{int(alive_before.sum())} members"
    if np.isfinite(val).any():
        best = int(np.nanargmax(val))
        member = members[indices[best]]
        text += f", best val_accuracy {val[best]:.4f} ({member.method}, lr {member.learning_rate:g}, seed {member.seed})"
    newly = int((alive_before & ~alive_after).sum())
    if newly:
        text += f", {newly} diverged"
    return text
