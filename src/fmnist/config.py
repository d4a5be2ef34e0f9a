"""The one settings object for a training run."""

from __future__ import annotations

import dataclasses

from fmnist import normalization
from fmnist.errors import UsageError

ENGINES = ("auto", "fused", "keras")


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optimizer by name: what it is (``summary``), how model.py builds it, and ``slots``, the state it
    keeps per weight (the study's memory model counts them). The learning rate is a setting of its own."""

    summary: str
    slots: int
    momentum: float = 0.0
    nesterov: bool = False
    adam: bool = False


OPTIMIZERS = {
    "sgd": Optimizer("plain SGD (the tutorial's)", slots=0),
    "momentum": Optimizer("SGD with momentum 0.9", slots=1, momentum=0.9),
    "nesterov": Optimizer("SGD with Nesterov momentum 0.9", slots=1, momentum=0.9, nesterov=True),
    "adam": Optimizer("Adam with Keras's defaults (beta_1 0.9, beta_2 0.999)", slots=2, adam=True),
}


@dataclasses.dataclass(frozen=True)
class Network:
    """A model by name: what it is (``summary``, for --help) and the layers model.py builds between the
    normalization and the ``logits`` Dense: ``convolutions`` (the filters of each 3x3 ReLU convolution,
    each followed by a 2x2 average pool), then Flatten, then a ReLU Dense of each ``hidden`` width, with
    ``between`` ("batch" or "layer": BatchNormalization or LayerNormalization) after the Dense and before
    its ReLU. The names and shapes live here, beside the optimizers, because the settings check them and
    this module imports no Keras; model.py turns a Network into layers and counts its parameters."""

    summary: str
    hidden: tuple[int, ...] = (300, 100)  # the tutorial's two ReLU layers
    between: str | None = None
    convolutions: tuple[int, ...] = ()


MODELS = {
    "mlp": Network("the tutorial's MLP: Flatten, Dense 300 and 100 with ReLU"),
    "mlp-bn": Network("the MLP with BatchNormalization after each hidden Dense, before its ReLU", between="batch"),
    "mlp-ln": Network("the MLP with LayerNormalization after each hidden Dense, before its ReLU", between="layer"),
    # A small CNN: 315,146 trainable parameters (model.trainable_parameters("cnn")). It downsamples by
    # striding, not pooling: jax2onnx 0.17.1 writes MaxPooling2D as a MaxPool over four axes that
    # onnxruntime 1.32 refuses to run ("Unsupported pooling size"), and AveragePooling2D as a Conv over
    # six axes whose shapes ONNX's strict inference cannot follow (fmnist's ONNX check needs them).
    "cnn": Network("Conv 32 and Conv 64 (3x3, stride 2, ReLU), Dense 128 ReLU", hidden=(128,), convolutions=(32, 64)),
}


MONITORS = ("val_loss", "val_accuracy")  # what early stopping watches: lower loss, higher accuracy is better
MAX_SEED = 2**32 - 1  # NumPy's and Keras's seeds are 32-bit
MAX_NAME_BYTES = 200


def check_seed(seed, count: int = 1) -> None:
    """``seed`` .. ``seed + count - 1`` must all be seeds: integers from 0 to 2**32 - 1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED + 1 - count:
        raise UsageError(f"seed {seed}: must be an integer from 0 to {MAX_SEED + 1 - count}"
                         + (f" (the {count:,} seeds are seed, seed+1, …)" if count > 1 else ""), "seed")


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise UsageError(f"optimizer {name!r}: unknown; choose from {', '.join(OPTIMIZERS)}", "optimizer")
    return name


def check_model(name: str) -> str:
    if not isinstance(name, str) or name not in MODELS:
        raise UsageError(f"model {name!r}: unknown; choose from {', '.join(MODELS)}", "model")
    return name


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # the tutorial's
    batch_size: int = 32  # Keras's fit default, which the tutorial relied on
    learning_rate: float = 0.01  # the default of the 'sgd' string the tutorial compiled with
    optimizer: str = "sgd"  # the tutorial's plain SGD; model.OPTIMIZERS lists the others
    seed: int = 0  # initialization and the per-epoch shuffle order both derive from it
    normalization: str = "standard"  # the tutorial's global StandardScaler
    valid_size: int = 5000  # the tutorial takes the first 5,000 training images as validation
    engine: str = "auto"  # fused on JAX (one compiled program per epoch), Keras fit elsewhere
    name: str | None = None  # the run folder's suffix; None: what the run is (``default_name``)
    data_dir: str | None = None  # None: FMNIST_DATA_DIR, the Keras cache, then Debian's folder
    verify: bool = True  # check the files against the pinned Fashion-MNIST SHA-256
    # Keras's EarlyStopping(patience=early_stopping, restore_best_weights=True): stop once ``monitor`` has
    # not improved for this many epochs; the saved model is the best epoch's. None: train every epoch.
    early_stopping: int | None = None
    monitor: str = "val_loss"  # or "val_accuracy"
    model: str = "mlp"  # the tutorial's network; MODELS lists the others (a run written before it was a setting: mlp)

    def __post_init__(self):
        if self.name is None:
            object.__setattr__(self, "name", self.default_name())
        for field, minimum in (("epochs", 1), ("batch_size", 1), ("valid_size", 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UsageError(f"{field} {value}: must be an integer >= {minimum}", field)
        if not (self.learning_rate > 0 and self.learning_rate < float("inf")):
            raise UsageError(f"learning_rate {self.learning_rate}: must be a positive finite number", "learning_rate")
        if self.engine not in ENGINES:
            raise UsageError(f"engine {self.engine!r}: choose from {', '.join(ENGINES)}", "engine")
        if not isinstance(self.name, str) or not self.name or "/" in self.name or self.name.startswith(".") \
                or "\0" in self.name:
            raise UsageError(f"name {self.name!r}: must be a plain, non-empty file name part", "name")
        if len(self.name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise UsageError(f"name: {len(self.name.encode('utf-8', 'surrogateescape'))} bytes; at most "
                             f"{MAX_NAME_BYTES} (the run folder's name adds a time stamp; file names stop at 255 bytes)", "name")
        check_seed(self.seed)
        if self.early_stopping is not None and (isinstance(self.early_stopping, bool)
                                                or not isinstance(self.early_stopping, int) or self.early_stopping < 1):
            raise UsageError(f"early_stopping {self.early_stopping}: the patience must be an integer >= 1 (epochs)",
                             "early_stopping")
        if self.monitor not in MONITORS:
            raise UsageError(f"monitor {self.monitor!r}: choose from {', '.join(MONITORS)}", "monitor")

        normalization.get(self.normalization)  # raises UsageError listing the valid names
        check_optimizer(self.optimizer)
        check_model(self.model)

    def default_name(self) -> str:
        """"tutorial" for the tutorial's settings, else the settings that differ from them, in the order
        that matters most (``per-image``, ``none-adam-lr0.0001``, ``standard-seed3``), after the model when
        it is not the tutorial's MLP (``cnn``, ``mlp-bn-none``)."""
        tutorial = TrainConfig(name="tutorial")
        parts = [self.normalization] if self.normalization != tutorial.normalization else []
        parts += [self.optimizer] if self.optimizer != tutorial.optimizer else []
        parts += [f"lr{self.learning_rate:g}"] if self.learning_rate != tutorial.learning_rate else []
        parts += [f"batch{self.batch_size}"] if self.batch_size != tutorial.batch_size else []
        parts += [f"seed{self.seed}"] if self.seed != tutorial.seed else []
        if parts and parts[0] != self.normalization:
            parts.insert(0, self.normalization)
        if self.model != tutorial.model:
            parts.insert(0, self.model)
        return "-".join(parts) or "tutorial"


# fmnist compare: the tutorial's question, at the tutorial's rate and optimizer (TrainConfig's)
COMPARE_METHODS = ("none", "rescale", "standard", "per-pixel")  # raw pixels, the tutorial's two, per pixel
COMPARE_SEEDS = 3

MAX_SEEDS = 1000
MAX_MEMBERS = 100_000  # a list of members, a row each in members.csv: beyond this, split the study
METHOD_NAMES = tuple(normalization.METHODS)
SAVE_MODELS = ("none", "best", "all")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A study: every method x optimizer x learning rate x seed, trained as members of one program each.

    ``fmnist compare`` is the case of one optimizer and one learning rate.
    """

    methods: tuple[str, ...] = METHOD_NAMES  # all six: the question is which normalization to use
    # A log grid in half-decades, so no optimum hides in a hole (raw pixels' best SGD rate, about 3e-4,
    # fell between 1e-3 and 1e-4 of a coarser grid): standardized inputs train up to about 0.3, raw
    # 0..255 pixels near 1e-4, and 1 shows where SGD blows up.
    learning_rates: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 3e-5, 1e-5)
    optimizers: tuple[str, ...] = ("sgd", "momentum", "adam")  # the tutorial's, and the two people reach for next
    models: tuple[str, ...] = ("mlp",)  # the tutorial's network; MODELS lists the others (one more axis of the grid)
    seeds: int = 5  # enough for a paired t-test with 4 degrees of freedom
    seed: int = 0  # the first seed; members use seed, seed+1, ...
    epochs: int = 10  # the tutorial's
    batch_size: int = 32  # the tutorial's
    valid_size: int = 5000  # the tutorial's split
    # Every other method is tested against it; None: the tutorial's "standard" when it is among the
    # methods, else the first method.
    baseline: str | None = None
    save_models: str = "best"  # model.keras for each method x optimizer at its best rate (first seed)
    members_per_program: int | None = None  # None: as many as fit in half the free memory
    data_dir: str | None = None
    verify: bool = True
    # A method whose best rate is the lowest or highest tried gets members at the next half-decade beyond
    # it, up to this many per side (0: none; the edge is flagged and gets no verdict).
    extend_grid: int = 2
    # (model, optimizer, method, learning rate) cells the sweep added beyond the grid's edges, in order
    # (recorded in study.json, so a resumed study has the same members; a study written before models were
    # an axis recorded (optimizer, method, learning rate): the mlp's)
    extra_rates: tuple[tuple[str, str, str, float], ...] = ()

    def __post_init__(self):
        if not self.methods:
            raise UsageError("methods: name at least one method", "methods")
        for name in self.methods:
            normalization.get(name)
        for field, values in (("methods", self.methods), ("optimizers", self.optimizers),
                              ("learning_rates", self.learning_rates), ("models", self.models)):
            if len(set(values)) != len(values):
                raise UsageError(f"{field}: a value is named twice ({', '.join(map(str, values))})", field)
        if not self.optimizers:
            raise UsageError("optimizers: name at least one optimizer", "optimizers")
        for name in self.optimizers:
            check_optimizer(name)
        if not self.models:
            raise UsageError("models: name at least one model", "models")
        for name in self.models:
            check_model(name)
        if not self.learning_rates:
            raise UsageError("learning_rates: name at least one learning rate", "learning_rates")
        for rate in self.learning_rates:
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < float("inf"):
                raise UsageError(f"learning_rates: {rate} is not a positive finite number", "learning_rates")
        for field, minimum in (("seeds", 1), ("epochs", 1), ("batch_size", 1), ("valid_size", 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UsageError(f"{field} {value}: must be an integer >= {minimum}", field)
        if self.seeds > MAX_SEEDS:
            raise UsageError(f"seeds {self.seeds}: at most {MAX_SEEDS:,} (a paired t-test needs a handful)", "seeds")
        check_seed(self.seed, self.seeds)
        if self.member_count > MAX_MEMBERS:
            raise UsageError(f"{self.member_count:,} members (methods x learning rates x optimizers x models x seeds); at "
                             f"most {MAX_MEMBERS:,} in one study")
        if self.baseline is None:
            object.__setattr__(self, "baseline", "standard" if "standard" in self.methods else self.methods[0])
        if self.baseline not in self.methods:
            raise UsageError(f"baseline {self.baseline!r} is not among the methods ({', '.join(self.methods)})", "baseline")
        if self.save_models not in SAVE_MODELS:
            raise UsageError(f"save_models {self.save_models!r}: choose from {', '.join(SAVE_MODELS)}", "save_models")
        if isinstance(self.extend_grid, bool) or not isinstance(self.extend_grid, int) or not 0 <= self.extend_grid <= 10:
            raise UsageError(f"extend_grid {self.extend_grid}: must be an integer from 0 to 10", "extend_grid")
        try:
            extra = tuple((str(cell[0]), str(cell[1]), str(cell[2]), float(cell[3])) if len(cell) == 4
                          else ("mlp", str(cell[0]), str(cell[1]), float(cell[2])) if len(cell) == 3 else None
                          for cell in self.extra_rates)
        except (TypeError, ValueError, IndexError, KeyError):
            extra = (None,)
        if None in extra:
            raise UsageError(f"extra_rates {self.extra_rates!r}: must be (model, optimizer, method, rate) cells")
        if any(model not in self.models or optimizer not in self.optimizers or method not in self.methods
               or not 0 < rate < float("inf") or rate in self.learning_rates
               for model, optimizer, method, rate in extra) or len(set(extra)) != len(extra):
            raise UsageError(f"extra_rates {self.extra_rates!r}: cells of this study's models, optimizers and "
                             "methods, each once, at positive rates off the grid")
        object.__setattr__(self, "extra_rates", extra)
        if self.members_per_program is not None and (
                isinstance(self.members_per_program, bool) or not isinstance(self.members_per_program, int)
                or self.members_per_program < 1):
            raise UsageError(f"members_per_program {self.members_per_program}: must be an integer >= 1", "members_per_program")

    @property
    def shows_models(self) -> bool:
        """Whether its lines and figures name the network: any study but one of the mlp alone."""
        return self.models != ("mlp",)

    @property
    def member_count(self) -> int:
        grid = len(self.methods) * len(self.learning_rates) * len(self.optimizers) * len(self.models)
        return (grid + len(self.extra_rates)) * self.seeds
