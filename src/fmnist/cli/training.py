"""``fmnist train``, ``fmnist compare`` and ``fmnist sweep``."""

from __future__ import annotations

import argparse
import sys

from fmnist.cli import common, report
from fmnist.config import COMPARE_METHODS, COMPARE_SEEDS, MODELS, MONITORS
from fmnist.reporting import tables
from fmnist.reporting.answer import LEGEND
from fmnist.runtime import stop_on_signals


def add_parsers(commands) -> None:
    train = commands.add_parser("train", help="train the tutorial's model (or another, --model) and write a run folder",
                                epilog=common.methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Train the tutorial's MLP (or the network --model names); writes config.json, history.csv, "
                                "metrics.json, model.keras, model_summary.txt, learning_curves.png, TensorBoard events and report.html "
                                "into the run folder.")
    common.train_options(train)
    train.add_argument("--model", metavar="NAME",
                       help="the network between the normalization and the 10 outputs (default mlp, the tutorial's): "
                       + "; ".join(f"{name}: {network.summary}" for name, network in MODELS.items()))
    train.add_argument("--output-dir", metavar="FOLDER", help="run folder (new or empty; default runs/<UTC time>-<name>)")
    train.add_argument("--name", help="run name, the run folder's suffix and the figures' title (default: tutorial, or "
                       "the settings that differ from the tutorial's, e.g. per-image-adam-lr0.001)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue RUN_DIR after its last checkpointed epoch with its recorded settings "
                       "(--epochs may be raised; options that change the result are refused)")
    train.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                       help="stop once --monitor has not improved for PATIENCE epochs (Keras's EarlyStopping) and keep "
                       "the best epoch's model (restore_best_weights); metrics.json says which epoch it is")
    train.add_argument("--monitor", choices=MONITORS, help="what --early-stopping watches (default val_loss)")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    train.set_defaults(handler=train_command)

    compare = commands.add_parser(
        "compare", help="train methods x seeds and compare them (table, curves, paired test)",
        description="Train each normalization method with several seeds at one learning rate and optimizer "
        "(a sweep with one cell per method: its members train together in one compiled program); writes "
        "runs.csv, summary.csv, members.csv and history.csv (as a sweep's), val_accuracy.png, loss.png, report.html, "
        "tensorboard/ (events of each member) and a run folder with the model of each member.",
        epilog=common.methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("--methods", help=f"comma-separated normalization methods (default {COMPARE_DEFAULTS['methods']})")
    compare.add_argument("--seeds", type=int, help=f"seeds per method: --seed, --seed+1, … (default {COMPARE_DEFAULTS['seeds']})")
    compare.add_argument("--baseline", help="method the others are tested against (default standard, or the first "
                         "method when standard is not among them)")
    compare.add_argument("--models", metavar="NAMES", help="comma-separated networks, each trained with every method "
                         "and seed (default mlp, the tutorial's; see fmnist train --help)")
    common.train_options(compare, normalization=False, engine=False)
    compare.add_argument("--output-dir", metavar="FOLDER", help="comparison folder (new or empty; default runs/<UTC time>-compare)")
    compare.add_argument("--resume", metavar="FOLDER",
                         help="finish an interrupted comparison with its recorded settings, or add seeds or models to "
                         "a finished one (--seeds N, more than before; --models with the recorded ones first; other "
                         "options are not allowed)")
    compare.set_defaults(handler=compare_command)
    _sweep_parser(commands)


def train_command(args) -> int:
    from fmnist.config import TrainConfig
    from fmnist.errors import UsageError
    from fmnist.training.progress import Progress
    from fmnist.training.resume import resume_config
    from fmnist.training.train import train

    named = common.given(args) | ({"model": args.model} if args.model is not None else {})
    if args.resume:
        if args.output_dir:
            raise UsageError("--resume names the run folder; --output-dir cannot be used with it")
        config, output_dir = resume_config(args.resume, named), args.resume
    else:
        config, output_dir = TrainConfig(**named, name=args.name), args.output_dir
    with stop_on_signals() as should_stop:
        result = train(config, output_dir, resume=bool(args.resume), should_stop=should_stop,
                       progress=Progress(config.epochs, quiet=args.quiet))
    report.wrote(result.report)
    last = result.history[-1]
    print(
        f"done: epoch {last['epoch']} val_accuracy {last['val_accuracy']:.4f}; "
        f"test loss {result.metrics['test_loss']:.4f} accuracy {result.metrics['test_accuracy']:.4f}; "
        f"{result.metrics['wall_seconds']:.1f}s; files in {result.run_dir}"
    )
    if result.metrics.get("status") == tables.Status.STUCK:
        print(f"fmnist: warning: stuck at chance (val_accuracy {last['val_accuracy']:.4f}; chance is 0.1): the model "
              "did not learn. Try --normalization standard, or a smaller --learning-rate", file=sys.stderr)
    return 0


COMPARE_DEFAULTS = {"methods": ",".join(COMPARE_METHODS), "seeds": COMPARE_SEEDS, "baseline": None,
                    "models": None}  # named as options


def compare_command(args) -> int:
    from fmnist.config import TrainConfig
    from fmnist.errors import UsageError
    from fmnist.store.studies import read_study
    from fmnist.training.compare import compare, comparison, format_table, parse_methods
    from fmnist.training.resume import resumed_study

    named = common.given(args) | {key: getattr(args, key) for key in COMPARE_DEFAULTS if getattr(args, key) is not None}
    if args.resume:
        extra = [common.option(key) for key in named if key not in ("seeds", "models", "data_dir")]
        if extra or args.output_dir:
            raise UsageError(f"--resume {args.resume}: the comparison's recorded settings are used (only --seeds may "
                             f"be raised, --models added to, --data-dir point elsewhere); drop "
                             f"{', '.join(extra or ['--output-dir'])}")
        if "models" in named:
            named["models"] = common.split(named["models"], "--models", str)
        config = resumed_study(args.resume, read_study(args.resume, "compare"), named)
    else:
        options = COMPARE_DEFAULTS | named
        models = options["models"] and common.split(options["models"], "--models", str)
        config = comparison(parse_methods(options["methods"]), options["seeds"], TrainConfig(**common.given(args)),
                            options["baseline"], models)
    with stop_on_signals() as should_stop:
        result = compare(config, args.resume or args.output_dir, resume=bool(args.resume), should_stop=should_stop)
    report.wrote(result.report)
    print()
    print(format_table(result.summary))
    print(f"\n{LEGEND}")
    print(f"files in {result.folder}: runs.csv, summary.csv, members.csv, history.csv, val_accuracy.png, loss.png, "
          "report.html, tensorboard/, one folder per run")
    return 0


SWEEP_DESCRIPTION = """Train every normalization method x learning rate x optimizer x seed (x model, --models)
and answer: does normalization help when every method gets its own best learning rate?

Members that share an optimizer and a model train together in one compiled program (jax.vmap over the member
axis, sharded over every device: GPUs, or one CPU device per core; several hosts join with
--coordinator-address/--num-processes/--process-id). The best rate of each method is chosen on
validation accuracy among the rates where it learned, and reported on test accuracy with a paired
t-test (paired by seed) against the baseline at its own best rate. A best rate on the edge of the
rates tried is extended by half-decades (--extend-grid); one still on the edge gets no verdict, and
so does a method that learned at no rate. With fewer than 3 paired seeds, or seeds too few to have
detected a 1-point difference, the verdict is "inconclusive".

Methods are compared within each model and optimizer; with several models, the answer also sets
the models side by side, each method at each model's own best rate.

Writes members.csv, history.csv, summary.csv, best.csv, heatmap-<optimizer>.png,
curves-<optimizer>.png (heatmap-<model>-<optimizer>.png for a model other than the mlp), report.html,
tensorboard/ (events of each member), and a run folder with the model of each method x optimizer (x
model) at its best rate (--save-models)."""


def _sweep_parser(commands) -> None:
    from fmnist.config import OPTIMIZERS, SAVE_MODELS, SweepConfig

    defaults = SweepConfig()
    sweep = commands.add_parser("sweep", help="methods x learning rates x optimizers x seeds, many models at once",
                                description=SWEEP_DESCRIPTION, epilog=common.methods_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--methods", help=f"comma-separated normalization methods (default all: {','.join(defaults.methods)})")
    sweep.add_argument("--learning-rates", metavar="RATES",
                       help="comma-separated learning rates (default " + ",".join(f"{r:g}" for r in defaults.learning_rates) + ")")
    sweep.add_argument("--optimizers", help=f"comma-separated, from {', '.join(OPTIMIZERS)} (default {','.join(defaults.optimizers)})")
    sweep.add_argument("--models", metavar="NAMES",
                       help="comma-separated networks, one more axis of the grid (default mlp, the tutorial's): "
                       + "; ".join(f"{name}: {network.summary}" for name, network in MODELS.items()))
    sweep.add_argument("--extend-grid", type=int, metavar="N",
                       help="when a method's best rate is the lowest or highest it tried, train it at the next "
                       f"half-decade beyond, up to N times per side (default {defaults.extend_grid}; 0: only flag the "
                       "edge, which gets no verdict)")
    sweep.add_argument("--seeds", type=int, help=f"seeds per cell: --seed, --seed+1, … (default {defaults.seeds})")
    sweep.add_argument("--seed", type=int, help=f"the first seed (default {defaults.seed})")
    sweep.add_argument("--epochs", type=int, help=f"default {defaults.epochs}")
    sweep.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    sweep.add_argument("--valid-size", type=int, help=f"the first N training images are validation (default {defaults.valid_size})")
    sweep.add_argument("--baseline", help="method the others are tested against (default standard, or the first "
                       "method when standard is not among them)")
    sweep.add_argument("--save-models", choices=SAVE_MODELS,
                       help="best: model.keras of each method x optimizer at its best rate, first seed (default); "
                       "all: every member; none")
    sweep.add_argument("--members-per-program", type=int, metavar="N",
                       help="at most N members in one compiled program (default: as many as fit in half the free memory)")
    common.data_options(sweep)
    sweep.add_argument("--output-dir", metavar="FOLDER", help="sweep folder (new or empty; default runs/<UTC time>-sweep)")
    sweep.add_argument("--resume", metavar="FOLDER", help="finish an interrupted sweep with its recorded settings, or add seeds or "
                       "models to a finished one (--seeds N, more than before; --models with the recorded ones first)")
    hosts = sweep.add_argument_group("several processes or hosts (jax.distributed; every process runs the same command)")
    hosts.add_argument("--coordinator-address", metavar="HOST:PORT",
                       help="process 0's address (default $JAX_COORDINATOR_ADDRESS, or Slurm/Open MPI detection)")
    hosts.add_argument("--num-processes", type=int, metavar="N", help="default $JAX_NUM_PROCESSES")
    hosts.add_argument("--process-id", type=int, metavar="K", help="0 .. N-1 (default $JAX_PROCESS_ID)")
    sweep.set_defaults(handler=sweep_command)


SWEEP_SETTINGS = ("methods", "learning_rates", "optimizers", "models", "seeds", "seed", "epochs", "batch_size", "valid_size",
                  "baseline", "save_models", "members_per_program", "extend_grid", "data_dir")


def sweep_command(args) -> int:
    from fmnist.config import SweepConfig
    from fmnist.reporting.answer import answer, format_best
    from fmnist.runtime import is_main_process, join_processes
    from fmnist.store.studies import read_study
    from fmnist.training.resume import resumed_study
    from fmnist.training.sweep import sweep

    join_processes(args.coordinator_address, args.num_processes, args.process_id)
    named = {key: getattr(args, key) for key in SWEEP_SETTINGS if getattr(args, key) is not None}
    for key, convert in (("methods", str), ("optimizers", str), ("models", str), ("learning_rates", float)):
        if key in named:
            named[key] = common.split(named[key], common.option(key), convert)
    if args.skip_checksum:
        named["verify"] = False
    if args.resume:
        if args.output_dir:
            raise common.usage("--resume names the sweep folder; --output-dir cannot be used with it")
        config = resumed_study(args.resume, read_study(args.resume, "sweep"), named)
    else:
        config = SweepConfig(**named)
    log = print if is_main_process() else (lambda *_: None)
    with stop_on_signals() as should_stop:
        result, best = sweep(config, args.resume or args.output_dir, resume=bool(args.resume), log=log,
                             should_stop=should_stop)
    if is_main_process():
        report.wrote(result.report)
        print()
        print(format_best(best))
        print(f"\n{LEGEND}; best rate: the highest mean final val_accuracy among the rates where no seed "
              "diverged and one learned")
        for line in answer(best):
            print(f"answer: {line}")
        kept = sum(1 for row in result.rows if row["run_dir"])
        print(f"files in {result.folder}: members.csv, history.csv, summary.csv, best.csv, "
              + ", ".join(f"heatmap-{line}.png, curves-{line}.png" for line in
                          [tables.line_name(model, optimizer) for model in config.models for optimizer in config.optimizers])
              + f", report.html, tensorboard/, {kept} run folder{'s' * (kept != 1)} with a model (best.csv's run_dir)")
    return 0
