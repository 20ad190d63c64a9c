"""The distribution of a run from a name: a tf.distribute strategy on Keras' TensorFlow
backend; on JAX one process, alone or data-parallel over its local devices
(keras.distribution.DataParallel)."""

from __future__ import annotations

import contextlib
import os
from typing import Optional

import keras

from kd_keras.config import STRATEGIES


class SingleProcess:
    """What the pipeline asks of a strategy, for a backend without tf.distribute: one
    process that is its own chief, and a scope that changes nothing."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


class DataParallelProcess(SingleProcess):
    """One process training on several local devices (JAX): Keras' DataParallel
    distribution, set globally, replicates the variables and splits every batch over the
    devices; the jitted step's batch mean is over the whole batch, so N devices make the
    update one device makes.

    Args:
        devices: JAX device names ("cpu:0", "gpu:1", ...).
    """

    def __init__(self, devices):
        self.devices = list(devices)
        self.num_replicas_in_sync = len(self.devices)
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=self.devices))


def _jax_distribution(name: str, num_gpus: int) -> SingleProcess:
    """default / one_device: one device; mirrored: every local device of the default
    kind (GPUs when there are any, else the CPU devices XLA was given), or num_gpus."""
    if name in ("multi_worker_mirrored", "tpu"):
        raise ValueError(f"--distribution_strategy={name} needs Keras' TensorFlow backend "
                         f"(this run is on {keras.backend.backend()}); use mirrored for the "
                         "devices of this machine, or set KERAS_BACKEND=tensorflow.")
    devices = keras.distribution.list_devices()
    gpus = [d for d in devices if d.startswith(("gpu", "cuda"))]
    if num_gpus > len(gpus):
        raise ValueError(f"--num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible.")
    if name != "mirrored":
        return SingleProcess()
    return DataParallelProcess(devices[: num_gpus] if num_gpus else devices)


def get_strategy(name: str = "default", num_gpus: int = 0, tpu: Optional[str] = None):
    """Builds a distribution strategy.

    Args:
        name: default (no distribution), one_device, mirrored (all local GPUs, or
            ``num_gpus`` of them; logical CPUs when there is no GPU; on JAX
            keras.distribution.DataParallel over the same), multi_worker_mirrored
            (cluster from $TF_CONFIG), or tpu (both TensorFlow only).
        num_gpus: GPUs for one_device / mirrored (0: CPU for one_device, all for mirrored).
        tpu: TPU address or name for the tpu strategy ("" for a local TPU VM).

    Raises:
        ValueError: unknown name, or more GPUs asked for than exist.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy '{name}'. Choose one of: "
                         f"{', '.join(STRATEGIES)}.")
    if keras.backend.backend() == "jax":
        return _jax_distribution(name, num_gpus)
    if keras.backend.backend() != "tensorflow":
        if name != "default" or num_gpus:
            raise ValueError(f"--distribution_strategy={name} needs Keras' TensorFlow or JAX "
                             f"backend (this run is on {keras.backend.backend()}); drop the "
                             "flag or set KERAS_BACKEND=tensorflow.")
        return SingleProcess()
    import tensorflow as tf

    if name == "multi_worker_mirrored":
        # First, before anything lists devices: collectives are set up at context start.
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--distribution_strategy=multi_worker_mirrored needs $TF_CONFIG "
                             "naming the cluster and this worker's task (see README).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus > len(gpus):
        raise ValueError(f"--num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if num_gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            devices = [g.name for g in gpus[: num_gpus or len(gpus)]]
        else:
            devices = [c.name for c in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy) -> bool:
    """Whether this process owns the shared outputs: the chief, or the only process."""
    if isinstance(strategy, SingleProcess):
        return True
    extended = strategy.extended
    return not extended._in_multi_worker_mode() or extended.should_checkpoint


def wait_for_all_workers(strategy) -> None:
    """Returns once every worker of a multi-worker run has called it (a no-op otherwise).

    A cross-replica sum cannot finish before every replica joins it, so it serves as a
    barrier: e.g. before the chief removes a folder that other workers still write to.
    """
    if isinstance(strategy, SingleProcess) or not strategy.extended._in_multi_worker_mode():
        return
    import tensorflow as tf

    @tf.function
    def one_sum():
        ones = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    one_sum()


def worker_folder(model_dir: str, strategy) -> str:
    """Where this process writes: model_dir on the chief (or alone), a subfolder elsewhere.

    Every worker of a multi-worker run executes the whole program; only the chief's
    outputs are kept, the others write to model_dir/workers/<index> (same layout).
    """
    if is_chief(strategy):
        return model_dir
    resolver = strategy.cluster_resolver
    return os.path.join(model_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")
