"""The one settings object for a training run."""

from __future__ import annotations

import dataclasses

from fmnist.errors import UsageError

ENGINES = ("auto", "fused", "keras")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # the tutorial's
    batch_size: int = 32  # Keras's fit default, which the tutorial relied on
    learning_rate: float = 0.01  # the default of the 'sgd' string the tutorial compiled with
    seed: int = 0  # initialization and the per-epoch shuffle order both derive from it
    normalization: str = "standard"  # the tutorial's global StandardScaler
    valid_size: int = 5000  # the tutorial takes the first 5,000 training images as validation
    engine: str = "auto"  # fused on JAX (one compiled program per epoch), Keras fit elsewhere
    name: str = "tutorial"  # the run folder's suffix
    data_dir: str | None = None  # None: FMNIST_DATA_DIR, the Keras cache, then Debian's folder
    verify: bool = True  # check the files against the pinned Fashion-MNIST SHA-256

    def __post_init__(self):
        for field, minimum in (("epochs", 1), ("batch_size", 1), ("valid_size", 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UsageError(f"--{field.replace('_', '-')} {value}: must be an integer >= {minimum}")
        if not (self.learning_rate > 0 and self.learning_rate < float("inf")):
            raise UsageError(f"--learning-rate {self.learning_rate}: must be a positive finite number")
        if self.engine not in ENGINES:
            raise UsageError(f"--engine {self.engine!r}: choose from {', '.join(ENGINES)}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise UsageError(f"--name {self.name!r}: must be a plain, non-empty file name part")
        from fmnist import normalization

        normalization.get(self.normalization)  # raises UsageError listing the valid names
