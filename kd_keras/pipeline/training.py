"""One Distiller trained over its whole schedule: the optimizer, backups (resumed after
an interruption), the NaN guard, stage control, TensorBoard."""

from __future__ import annotations

import shutil
import sys
from typing import Dict, List, Optional

import numpy as np

from kd_keras import backends, backup, callbacks, models, optimization, tensorboard_logs
from kd_keras import preemption as preemption_lib
from kd_keras.data import batching
from kd_keras.data.features import Features
from kd_keras.distiller import Distiller
from kd_keras.errors import TrainingDiverged
from kd_keras.pipeline.context import RunContext
from kd_keras.pipeline.inputs import TaskData


def verbose() -> int:
    """A progress bar on a terminal, one summary line per epoch otherwise."""
    return 1 if sys.stdout.isatty() else 2


def keep_best(context: RunContext, task: TaskData, model, folder: str,
              patience: int = 0) -> callbacks.DevEvaluator:
    """A callback that evaluates on dev after each epoch and saves ``model`` (a Hugging
    Face folder with the tokenizer and the label names) to ``folder`` whenever the task's
    metric improves; ``patience`` epochs without gain end the run (0: never)."""

    def save(record):
        models.save_model(model, task.tokenizer, folder, task.spec.labels)

    dev = backends.make_dataset(task.dev, context.config.data.eval_batch_size,
                                training=False)
    return callbacks.DevEvaluator(dev, task.dev.labels, task.spec.metrics,
                                  task.spec.is_regression, save, patience)


def fit(context: RunContext, model: Distiller, task: TaskData, learning_rate: float,
        run_name: str, extra_callbacks: List, output_dir: str,
        train: Optional[Features] = None, teacher_logits: Optional[np.ndarray] = None
        ) -> Dict:
    """Compiles a Distiller and trains it over its whole schedule, one ``fit`` per epoch.

    A backup in the chief's model_dir/backup/<run_name> from an interrupted run is
    resumed: weights, optimizer, dropout states, stage, callback bookkeeping and the
    input position all continue.  Each epoch is its own ``fit`` call (a resumed epoch runs
    only its remaining batches), and the step is retraced between two when the stage
    changed.

    Args:
        context: the run.
        model: the Distiller, built in the strategy's scope.
        task: the tokenized splits.
        learning_rate: the peak learning rate.
        run_name: "teacher" or "distill": the backup's and the TensorBoard run's name.
        extra_callbacks: run after the stage controller (dev evaluation, pictures).
        output_dir: the model folder the callbacks write; removed if the loss diverges.
        train: the training examples when not task.train (the labelled set followed by
            text without labels).
        teacher_logits: float32 [training examples, labels], computed beforehand, to go
            with the training batches.

    The backup is kept when training ends (remove_backup, once the caller has recorded
    the result), and removed when the loss diverged.

    Returns:
        callbacks.recorded: per-epoch history, stages, best dev epoch and dev history,
        every epoch's (those before a resume included).

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
    """
    config = context.config
    data, settings = config.data, config.train
    train = task.train if train is None else train
    steps_per_epoch = batching.batches_per_epoch(train.lengths, data.batch_size)
    with context.strategy.scope():
        model.compile(optimizer=optimization.make_optimizer(
            learning_rate, model.schedule.max_epochs * steps_per_epoch,
            settings.warmup_proportion, settings.weight_decay,
            model.stage_start if config.distill.stage_warmup else None),
            jit_compile=settings.xla or backends.current().COMPILES_STEPS)
        model.build_optimizer()
    preemption = preemption_lib.Preemption()
    backups = backup.TrainingBackup(context.shared_path("backup", run_name), steps_per_epoch,
                                    settings.checkpoint_steps, writes=context.is_chief,
                                    preemption=preemption)
    backups.set_model(model)
    backups.restore()  # before the other callbacks read the stage and the bookkeeping
    epoch, batch = backups.position()
    if (epoch, batch) != (0, 0):
        print(f"Resuming {run_name} from its backup at epoch {epoch + 1}, batch {batch + 1}.")
    nan_guard = callbacks.StopOnNaN()
    # Order matters: the epoch-end backup comes after the callbacks that update the stage
    # and the bookkeeping.
    callback_list = ([backups, callbacks.ResumedEpochMeans(), nan_guard,
                      callbacks.StageController()] + extra_callbacks
                     + [callbacks.EpochHistory(),
                        tensorboard_logs.TensorBoard(context.path("logs", run_name)),
                        backups.closing_callback()])

    def epoch_data(first_epoch: int, first_batch: int):
        return backends.make_dataset(train, data.batch_size, training=True,
                                     seed=settings.seed, teacher_logits=teacher_logits,
                                     epochs=first_epoch + 1, start_epoch=first_epoch,
                                     start_batch=first_batch)

    dev = backends.make_dataset(task.dev, data.eval_batch_size, training=False)
    with preemption:  # SIGTERM / SIGINT: a backup at the next batch, then errors.Preempted
        model.fit_schedule(epoch_data, steps_per_epoch, callback_list, dev,
                           start_epoch=epoch, start_batch=batch, verbose=verbose())
    if nan_guard.failed_at is not None:
        remove_backup(context, run_name)
        shutil.rmtree(output_dir, ignore_errors=True)
        failed_epoch, failed_batch = nan_guard.failed_at
        raise TrainingDiverged(
            f"the {run_name} loss became NaN or infinite at epoch {failed_epoch}, batch "
            f"{failed_batch}; lower --{'teacher_' if run_name == 'teacher' else ''}"
            f"learning_rate (now {learning_rate:g}) or the loss weights, and run again.")
    return callbacks.recorded(model)


def remove_backup(context: RunContext, run_name: str) -> None:
    """Removes a training's backup once what it produced is recorded as finished (the
    teacher's marker, the student's record): a run killed before that point resumes from
    the backup's end instead of training again."""
    backup.remove(context.shared_path("backup"), run_name, context.strategy)
