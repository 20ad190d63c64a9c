"""Where a process of a run stands: the chief or another worker, where it writes, and a
barrier all workers pass together.  The strategies themselves come from
``backends.strategy``."""

from __future__ import annotations

import contextlib
import os


class SingleProcess:
    """What the pipeline asks of a strategy, for a backend without tf.distribute: one
    process that is its own chief, and a scope that changes nothing."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


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
    import tensorflow as tf  # multi-worker runs are TensorFlow's

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
