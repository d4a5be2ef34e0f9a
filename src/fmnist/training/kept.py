"""The models a study keeps (``save_models``: best, all or none): each rebuilt from its program's last
state into a run folder like ``fmnist train``'s, so evaluate, predict, export and serve take it."""

from __future__ import annotations

import os
from pathlib import Path

from fmnist import data
from fmnist.config import SweepConfig, TrainConfig
from fmnist.reporting import tables
from fmnist.reporting.tables import Status
from fmnist.runtime import barrier
from fmnist.store import artifacts, kept_runs, program_files, studies
from fmnist.store.runs import create_run
from fmnist.training.grid import StudyMember, lines_of
from fmnist.training.train import write_results


def kept_members(config: SweepConfig, members: list[StudyMember], rows: list[dict]) -> list[int]:
    """The members whose models are saved: all, none, or per model x optimizer x method the first finished
    seed at its best learning rate."""
    if config.save_models == "all":
        return [member.index for member in members]
    if config.save_models == "none":
        return []
    summary = tables.summary_rows(rows)
    kept = []
    for model, optimizer in lines_of(config):
        for method in config.methods:
            cell = tables.best_rate(summary, method, optimizer, model)
            if cell is None:
                continue
            chosen = [row_index for row_index, row in enumerate(rows)
                      if (tables.model_of(row), row["method"], row["optimizer"], row["learning_rate"])
                      == (model, method, optimizer, cell["learning_rate"]) and Status(row["status"]).finished]
            kept += chosen[:1]
    return kept


def save_models(folder, config, members, programs, state, stats, dataset) -> None:
    """Each kept member's run folder with its model, written by the process that holds the member."""
    import jax

    from fmnist.engines.program import read_state
    from fmnist.model import build_model, network_statistics

    rows = state.rows()
    study_id = studies.read_study(folder).get("study_id", "")
    kept = set(kept_members(config, members, rows))
    state.run_dirs = {index: members[index].name for index in kept}
    splits = data.split(dataset, config.valid_size)
    for program in programs:
        positions = [position for position, index in enumerate(program["members"]) if index in kept
                     and not kept_runs.kept_member(folder / members[index].name, study_id)]
        if not positions:
            continue
        saved = program_files.read_program_state(folder, program["name"], config.epochs, positions,
                                              process=jax.process_index())
        for position, arrays in saved.items():
            member, row = members[program["members"][position]], rows[program["members"][position]]
            run_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, learning_rate=member.learning_rate,
                                     optimizer=member.optimizer, seed=member.seed, normalization=member.method,
                                     valid_size=config.valid_size, name=member.name, data_dir=config.data_dir,
                                     verify=config.verify, model=member.model)
            diverged = row["status"] == Status.DIVERGED
            metrics = {"diverged": diverged, "status": row["status"], "split_sizes": splits.sizes(),
                       "wall_seconds": row["seconds"]}
            model = None
            if not diverged:
                metrics |= {"test_loss": row["test_loss"], "test_accuracy": row["test_accuracy"]}
                model = build_model(member.method, stats[member.method], member.learning_rate, member.optimizer,
                                    member.model)
                read_state(model)  # builds the optimizer's variables
                for variables, prefix in ((model.trainable_variables, "trainable"),
                                          (model.optimizer.variables, "optimizer")):
                    for number, variable in enumerate(variables):
                        variable.assign(arrays[f"{prefix}_{number}"])
                # The network's statistics come last among the non-trainable variables in both models (after
                # the member's MemberNormalization settings, after the method's own layers here).
                statistics = network_statistics(model)
                count = sum(key.startswith("non_trainable_") for key in arrays)
                for number, variable in enumerate(statistics, count - len(statistics)):
                    variable.assign(arrays[f"non_trainable_{number}"])
            member_run(folder, run_config, dataset, stats[member.method], state.histories[member.index], metrics,
                            model, {"study": str(folder), "study_id": study_id, "index": member.index,
                                    "program": program["name"]})
    barrier("models saved")
    program_files.remove_program_states(folder, jax.process_index())


def member_run(folder: Path, config: TrainConfig, dataset, stats: dict, history: list[dict], metrics: dict,
               model, member: dict) -> None:
    """The run folder of a study member whose model is kept: the files of ``fmnist train``'s folder but
    the checkpoint, so ``evaluate`` and ``predict`` take it like any run."""
    run_dir = folder / config.name
    if os.path.lexists(run_dir):  # left half-written by this study when interrupted (kept_member checked it)
        import shutil

        shutil.rmtree(run_dir)
    create_run(config, run_dir, None, dataset, stats, "members", extra={"study_member": member})
    artifacts.write_csv(run_dir / "history.csv", history, artifacts.HISTORY_COLUMNS)
    write_results(run_dir, config, history, metrics, model)
