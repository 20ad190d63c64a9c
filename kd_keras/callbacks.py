"""Keras callbacks: stage switching, dev metrics with best-student keeping, TensorBoard extras."""

from __future__ import annotations

import os
import sys
from typing import Callable, Dict, List, Optional, Tuple

import kd_keras  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras

from kd_keras import metrics as glue_metrics


def load_run_state(model, key: str, default):
    """Reads one callback's saved bookkeeping from the Distiller's run state."""
    return model.get_run_state().get(key, default)


def store_run_state(model, key: str, value) -> None:
    """Writes one callback's bookkeeping into the run state, which checkpoints carry."""
    state = model.get_run_state()
    state[key] = value
    model.set_run_state(state)


def backup_position(backup_dir: str, steps_per_epoch: int) -> Tuple[int, int]:
    """Where a run resumes: (epoch, batch) after the last backup, or (0, 0) without one.

    Mirrors how Keras' BackupAndRestore picks the initial epoch and step, so the input
    pipeline can start at the same place (see data.make_dataset).
    """
    latest = tf.train.latest_checkpoint(os.path.join(backup_dir, "chief"))
    if latest is None:
        return 0, 0
    reader = tf.train.load_checkpoint(latest)
    epoch = int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    batch = int(reader.get_tensor("ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
    if epoch < 0:
        return 0, 0
    if batch < 0 or batch >= steps_per_epoch - 1:
        return epoch + 1, 0
    return epoch, batch + 1


class TrainingBackup(tf_keras.callbacks.BackupAndRestore):
    """BackupAndRestore that also backs up at epoch end, after the other callbacks.

    Put it first in the callback list, so its restore (at train begin) comes before the
    other callbacks read the model, and add ``closing_callback()`` last, so the
    epoch-end backup holds the stage and bookkeeping those callbacks just updated.

    Args:
        backup_dir: folder of the backup (removed when training ends normally).
        steps_per_epoch: batches per epoch.
        save_steps: also back up every this many steps (0: at epoch ends only).
    """

    def __init__(self, backup_dir: str, steps_per_epoch: int, save_steps: int = 0):
        # An integer save_freq makes Keras resume mid-epoch; a huge one means "never".
        super().__init__(backup_dir, save_freq=save_steps or sys.maxsize,
                         delete_checkpoint=True)
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        pass  # done by closing_callback(), after the other callbacks

    def closing_callback(self) -> tf_keras.callbacks.Callback:
        backup = self

        class _EpochEndBackup(tf_keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                backup._backup(epoch=epoch, batch=backup.steps_per_epoch - 1)

        return _EpochEndBackup()


class StopOnNaN(tf_keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where it happened."""

    def __init__(self):
        super().__init__()
        self.failed_at: Optional[Tuple[int, int]] = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.failed_at = (self.epoch + 1, batch + 1)
            self.model.stop_training = True


class StageController(tf_keras.callbacks.Callback):
    """Ends stages on their epoch limit or when their cosine loss is small enough.

    The stage lives in the Distiller's tf.Variables (stage_index, epochs_in_stage); this
    callback only reads and advances them, so a restored checkpoint resumes the stage.

    Args:
        cos_threshold: an internal stage ends early once the mean train [CLS] cosine loss
            of its active pairs falls below this (0 disables).
        log: prints a line; defaults to print.
    """

    def __init__(self, cos_threshold: float = 0.0, log: Callable[[str], None] = print):
        super().__init__()
        self.cos_threshold = cos_threshold
        self.log = log
        self.history: List[Dict] = []

    def on_train_begin(self, logs=None):
        self.history = load_run_state(self.model, "stages", [])
        self.model.sync_stage()
        self._announce()

    def on_epoch_begin(self, epoch, logs=None):
        if self.model.sync_stage():
            self._announce()

    def _announce(self):
        model = self.model
        self.log(f"Stage {model.active_stage + 1}/{len(model.stages)}: {model.stage.name}")

    def stage_finished(self, logs: Dict) -> Optional[str]:
        """Why the current stage is over after this epoch, or None."""
        model = self.model
        stage = model.stage
        if int(model.epochs_in_stage.numpy()) >= stage.max_epochs:
            return f"epoch limit {stage.max_epochs}"
        if self.cos_threshold > 0 and stage.internal:
            values = [logs[model.cosine_names[p]] for p in stage.pairs
                      if model.cosine_names[p] in logs]
            if values and float(np.mean(values)) < self.cos_threshold:
                return f"cosine loss {np.mean(values):.4f} < {self.cos_threshold}"
        return None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        model = self.model
        model.epochs_in_stage.assign_add(1)
        reason = self.stage_finished(logs)
        logs["stage"] = model.active_stage + 1
        if reason is None:
            return
        self._end_stage(epoch, reason)

    def _end_stage(self, epoch: int, reason: str) -> None:
        model = self.model
        self.history.append({"stage": model.active_stage + 1, "name": model.stage.name,
                             "epochs": int(model.epochs_in_stage.numpy()),
                             "ended_after_epoch": epoch + 1, "reason": reason})
        self.log(f"Stage {model.active_stage + 1}/{len(model.stages)} ends after epoch "
                 f"{epoch + 1}: {reason}.")
        next_index = model.active_stage + 1
        # The variables move on now, so a checkpoint written at this epoch end resumes
        # in the next stage; the step itself is rebuilt at the next epoch's start.
        model.stage_index.assign(next_index)
        model.epochs_in_stage.assign(0)
        store_run_state(model, "stages", self.history)
        if next_index >= len(model.stages):
            model.stop_training = True


class DevEvaluator(tf_keras.callbacks.Callback):
    """Computes the task's GLUE metrics on dev after each epoch and keeps the best student.

    Adds ``val_<metric>`` to the epoch logs (so TensorBoard and the progress line show
    them).  Only epochs whose stage trains the classifier compete for "best".

    Args:
        dataset: dev tf.data.Dataset of (features, labels), in a fixed order.
        labels: dev labels [n].
        metric_names: metrics to compute; the first picks the best epoch.
        regression: the task is a regression.
        save_best: called with the epoch's metrics when a new best is found.
        patience: stop after this many classifier epochs without improvement (0: never).
    """

    def __init__(self, dataset, labels: np.ndarray, metric_names, regression: bool = False,
                 save_best: Optional[Callable[[Dict], None]] = None, patience: int = 0):
        super().__init__()
        self.dataset = dataset
        self.labels = labels
        self.metric_names = list(metric_names)
        self.regression = regression
        self.save_best = save_best
        self.patience = patience
        self.best: Optional[Dict] = None
        self.epochs_without_improvement = 0
        self.history: List[Dict] = []

    def on_train_begin(self, logs=None):
        state = load_run_state(self.model, "dev", {})
        self.best = state.get("best")
        self.epochs_without_improvement = state.get("epochs_without_improvement", 0)
        self.history = state.get("history", [])

    def on_epoch_end(self, epoch, logs=None):
        self._evaluate(epoch, logs if logs is not None else {})
        store_run_state(self.model, "dev", {
            "best": self.best, "epochs_without_improvement": self.epochs_without_improvement,
            "history": self.history})

    def _evaluate(self, epoch: int, logs: Dict) -> None:
        model = self.model
        stage = model.stages[model.active_stage]
        logits = model.predict(self.dataset, verbose=0)
        values = glue_metrics.compute(self.metric_names, self.labels, logits, self.regression)
        for name, value in values.items():
            logs[f"val_{name}"] = value
        record = {name: float(value) for name, value in values.items()}
        record.update(epoch=epoch + 1, stage=model.active_stage + 1)
        self.history.append(record)
        if not (stage.kd or stage.hard_only):
            return
        main = self.metric_names[0]
        if self.best is None or values[main] > self.best[main]:
            self.best = record
            self.epochs_without_improvement = 0
            if self.save_best:
                self.save_best(record)
        else:
            self.epochs_without_improvement += 1
            if self.patience and self.epochs_without_improvement >= self.patience:
                print(f"Early stopping: no {main} gain on dev for {self.patience} epochs.")
                model.stop_training = True


def attention_image(teacher_maps: List[np.ndarray], student_maps: List[np.ndarray]) -> np.ndarray:
    """A picture of head-averaged attention: teacher maps on top, student maps below.

    Args:
        teacher_maps: per matched pair, float [seq, seq].
        student_maps: per matched pair, float [seq, seq].

    Returns:
        uint8 [1, 2 * (seq * scale + gap), pairs * (seq * scale + gap), 3].
    """
    seq = teacher_maps[0].shape[0]
    scale = max(1, 96 // seq)
    gap = 2
    cell = seq * scale + gap
    image = np.full((2 * cell, len(teacher_maps) * cell, 3), 255, np.uint8)
    for row, maps in enumerate((teacher_maps, student_maps)):
        for col, matrix in enumerate(maps):
            scaled = np.kron(matrix / max(float(matrix.max()), 1e-9), np.ones((scale, scale)))
            shade = (255 * (1.0 - scaled)).astype(np.uint8)
            top, left = row * cell, col * cell
            image[top: top + seq * scale, left: left + seq * scale] = shade[..., None]
    return image[None]


class TensorBoardExtras(tf_keras.callbacks.Callback):
    """What Keras' TensorBoard callback does not write: hparams, stage events, attention maps.

    Args:
        log_dir: the run's TensorBoard folder.
        hparams: run settings to record (schedule, lambda, T, layers ...).
        example: one example's features, each int [1, seq], for the attention picture.
    """

    def __init__(self, log_dir: str, hparams: Dict, example: Dict[str, np.ndarray]):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "stages"))
        self.hparams = hparams
        self.example = example
        self.stage_at_epoch_start = None

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        with self.writer.as_default():
            hp.hparams(self.hparams)
            self.writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self.stage_at_epoch_start = self.model.active_stage

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        ended = int(model.stage_index.numpy()) != self.stage_at_epoch_start
        with self.writer.as_default(step=epoch + 1):
            tf.summary.scalar("stage", self.stage_at_epoch_start + 1)
            if ended and model.teacher is not None:
                stage = model.stages[self.stage_at_epoch_start]
                tf.summary.text("stage_end", f"{stage.name} ended after epoch {epoch + 1}")
                tf.summary.image(f"attention/stage_{self.stage_at_epoch_start + 1}",
                                 self.attention_picture())
        self.writer.flush()

    def attention_picture(self) -> np.ndarray:
        """Teacher vs student attention maps (mean over heads) for the fixed example."""
        model = self.model
        inputs = {k: tf.constant(v) for k, v in self.example.items()}
        teacher = model.teacher(inputs, training=False)
        student = model.student(inputs, training=False)
        length = int(self.example["attention_mask"].sum())
        teacher_maps = [teacher.attentions[t - 1][0].numpy().mean(0)[:length, :length]
                        for _, t in model.mapping]
        student_maps = [student.attentions[s - 1][0].numpy().mean(0)[:length, :length]
                        for s, _ in model.mapping]
        return attention_image(teacher_maps, student_maps)
