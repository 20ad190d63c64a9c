"""What one run works with besides its configuration: the strategy that distributes it,
and the folders this process writes and reads."""

from __future__ import annotations

import dataclasses
import os

import keras

from kd_keras import backends, distribute
from kd_keras.config import RunConfig


@dataclasses.dataclass(frozen=True)
class RunContext:
    """A run's configuration and its place in the world.

    Attributes:
        config: the user's settings, as given (and saved in config.json).
        strategy: what distributes the run (backends.strategy).
        model_dir: where this process writes: --model_dir, or on a multi-worker job's
            other workers model_dir/workers/<task>.
        shared_dir: --model_dir itself (the chief's): what every worker reads of earlier
            runs (the fine-tuned teacher, the student, the labels) and backs up to, so
            that all of them take the same path through the run.
    """

    config: RunConfig
    strategy: object
    model_dir: str
    shared_dir: str

    def path(self, *parts: str) -> str:
        """A path in the folder this process writes."""
        return os.path.join(self.model_dir, *parts)

    def shared_path(self, *parts: str) -> str:
        """A path in the chief's folder (the same as ``path`` in a one-process run)."""
        return os.path.join(self.shared_dir, *parts)

    @property
    def cache_dir(self) -> str:
        """Tokenized data, unpacked models, teacher logits and compiled steps."""
        return self.config.train.cache_dir or self.path("cache")

    @property
    def export_dir(self) -> str:
        return self.config.train.export_dir or self.path("export")

    @property
    def is_chief(self) -> bool:
        return distribute.is_chief(self.strategy)


def start(config: RunConfig) -> RunContext:
    """Sets the run up: its strategy first (multi-worker needs a fresh TensorFlow
    context), seeds, the precision policy (before any model is built: layers take it
    when created), and where compiled steps are kept.

    Raises:
        ValueError: a strategy the backend lacks, or batch sizes that do not split over
            its devices.
    """
    t = config.train
    strategy = backends.strategy(t.distribution_strategy, t.num_gpus, t.tpu)
    devices = getattr(strategy, "devices", None)  # JAX DataParallel splits every batch
    if devices:
        for flag in ("batch_size", "eval_batch_size"):
            size = getattr(config.data, flag)
            if size % len(devices):
                raise ValueError(f"--{flag}={size} does not split over the {len(devices)} "
                                 f"devices of --distribution_strategy=mirrored; pass a "
                                 f"multiple of {len(devices)}.")
    keras.utils.set_random_seed(t.seed)
    keras.mixed_precision.set_global_policy(
        "float32" if t.mixed_precision == "none" else t.mixed_precision)
    context = RunContext(config, strategy, distribute.worker_folder(t.model_dir, strategy),
                         t.model_dir)
    # Compiled steps (JAX) are kept beside the other caches, so a resumed run or one
    # sharing --cache_dir does not compile the same shapes again.
    backends.current().use_compilation_cache(os.path.join(context.cache_dir,
                                                          backends.name()))
    return context
