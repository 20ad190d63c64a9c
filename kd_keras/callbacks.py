"""Keras 3 callbacks of a run: backups for exact resume, the NaN guard, stage switching,
dev metrics with best-student keeping, and the TensorBoard extras.

``Distiller.fit_schedule`` calls ``fit`` once per epoch; between two calls the Distiller
retraces its step for the next stage.  A callback that ends the run sets
``model.run_finished``.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, List, Optional, Tuple

import keras
import numpy as np

from kd_keras import backends, files, summaries
from kd_keras import metrics as glue_metrics

STATE_FILE, VARIABLES_FILE = "state.json", "variables.npz"


def load_run_state(model, key: str, default):
    """Reads one callback's saved bookkeeping from the Distiller's run state."""
    return model.get_run_state().get(key, default)


def store_run_state(model, key: str, value) -> None:
    """Writes one callback's bookkeeping into the run state, which backups carry."""
    state = model.get_run_state()
    state[key] = value
    model.set_run_state(state)


# --------------------------------------------------------------------------- backups


def read_backup_state(backup_dir: str) -> Optional[Dict]:
    """The last backup's state (position, bookkeeping), or None when there is none."""
    path = os.path.join(backup_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def backup_position(backup_dir: str, steps_per_epoch: int) -> Tuple[int, int]:
    """Where a run resumes: (epoch, batch) after the last backup, or (0, 0) without one."""
    state = read_backup_state(backup_dir)
    if state is None:
        return 0, 0
    epoch, batch = int(state["epoch"]), int(state["batch"])
    if batch >= steps_per_epoch:
        return epoch + 1, 0
    return epoch, batch


class TrainingBackup(keras.callbacks.Callback):
    """Backs up everything a resumed run needs, and restores it before training.

    A backup is a folder, written whole to a temporary sibling and renamed: the
    Distiller's backup_variables (student, projections, stage, optimizer, dropout
    seed-generator states) in variables.npz, and the position (epoch, next batch) with the
    callbacks' bookkeeping in state.json.  Only the chief writes; every worker restores
    from the same folder.

    Put it first in the callback list, so its restore comes before the other callbacks
    read the model, and add ``closing_callback()`` last, so the epoch-end backup holds
    the stage and bookkeeping those callbacks just updated.

    Args:
        backup_dir: folder of the backup.
        steps_per_epoch: batches per epoch.
        save_steps: also back up every this many optimizer steps (0: at epoch ends only).
        writes: False on workers other than the chief.
    """

    def __init__(self, backup_dir: str, steps_per_epoch: int, save_steps: int = 0,
                 writes: bool = True):
        super().__init__()
        self.backup_dir = backup_dir
        self.steps_per_epoch = steps_per_epoch
        self.save_steps = save_steps
        self.writes = writes
        self.epoch = 0
        self.restored = False

    def restore(self) -> bool:
        """Loads the backup into the model, if there is one (once per run)."""
        if self.restored:
            return False
        self.restored = True
        state = read_backup_state(self.backup_dir)
        if state is None:
            return False
        variables = self.model.backup_variables()
        with np.load(os.path.join(self.backup_dir, VARIABLES_FILE)) as saved:
            values = [saved[f"v{i}"] for i in range(len(saved.files))]
        if len(values) != len(variables) or any(
                tuple(v.shape) != value.shape for v, value in zip(variables, values)):
            raise ValueError(f"The backup in {self.backup_dir} does not fit this model; "
                             "remove it to start again.")
        for variable, value in zip(variables, values):
            variable.assign(value)
        self.model.set_run_state(state["run_state"])
        return True

    def on_train_begin(self, logs=None):
        self.restore()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        # Counted here, not read after each batch: on JAX the variables hold their values
        # only between epochs unless a callback syncs them (which costs a copy).
        self.steps_before_epoch = int(keras.ops.convert_to_numpy(
            self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        if not self.save_steps:
            return
        if (self.steps_before_epoch + batch + 1) % self.save_steps == 0:
            self.save(self.epoch, self.model.first_batch + batch + 1)

    def save(self, epoch: int, next_batch: int) -> None:
        """Writes the backup: training continues at (epoch, next_batch)."""
        if not self.writes:
            return
        backends.current().sync_variables(self.model)
        variables = self.model.backup_variables()
        arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}
        with files.atomic_folder(self.backup_dir) as staging:
            np.savez(os.path.join(staging, VARIABLES_FILE), **arrays)
            files.write_json(os.path.join(staging, STATE_FILE),
                             {"epoch": epoch, "batch": next_batch,
                              "run_state": self.model.get_run_state()})

    def closing_callback(self) -> keras.callbacks.Callback:
        backup = self

        class _EpochEndBackup(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                backup.save(epoch, backup.steps_per_epoch)

        return _EpochEndBackup()


class StopOnNaN(keras.callbacks.Callback):
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
            self.failed_at = (self.epoch + 1, self.model.first_batch + batch + 1)
            self.model.stop_training = True
            self.model.run_finished = True


class StageController(keras.callbacks.Callback):
    """Ends each stage as it says: on its epoch limit, or earlier on its early_end (an
    internal stage whose mean train [CLS] cosine loss fell below --cos_threshold).

    The stage lives in the Distiller's variables (stage_index, epochs_in_stage,
    stage_start); this callback advances them at an epoch's end, so a backup written then
    resumes in the next stage, and the next epoch's fit runs the next stage's step.

    Args:
        log: prints a line; defaults to print.
    """

    def __init__(self, log: Callable[[str], None] = print):
        super().__init__()
        self.log = log
        self.history: List[Dict] = []
        self.announced = None

    def on_train_begin(self, logs=None):
        # The step already follows the stage (Distiller.fit_schedule syncs it before fit).
        self.history = load_run_state(self.model, "stages", [])
        if self.announced != self.model.active_stage:
            self.announced = self.model.active_stage
            model = self.model
            self.log(f"Stage {model.active_stage + 1}/{len(model.stages)}: {model.stage.name}")

    def stage_finished(self, logs: Dict) -> Optional[str]:
        """Why the current stage is over after this epoch, or None."""
        model = self.model
        stage = model.stage
        if int(keras.ops.convert_to_numpy(model.epochs_in_stage)) >= stage.max_epochs:
            return f"epoch limit {stage.max_epochs}"
        end = stage.early_end
        if end is not None:
            values = [logs[name] for name in end.metrics if name in logs]
            if values and float(np.mean(values)) < end.threshold:
                return f"{end.description} {np.mean(values):.4f} < {end.threshold}"
        return None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        model = self.model
        model.epochs_in_stage.assign(model.epochs_in_stage + 1)
        reason = self.stage_finished(logs)
        logs["stage"] = model.active_stage + 1
        if reason is not None:
            self._end_stage(epoch, reason)

    def _end_stage(self, epoch: int, reason: str) -> None:
        model = self.model
        epochs = int(keras.ops.convert_to_numpy(model.epochs_in_stage))
        self.history.append({"stage": model.active_stage + 1, "name": model.stage.name,
                             "epochs": epochs, "ended_after_epoch": epoch + 1,
                             "reason": reason})
        self.log(f"Stage {model.active_stage + 1}/{len(model.stages)} ends after epoch "
                 f"{epoch + 1}: {reason}.")
        next_index = model.active_stage + 1
        # The variables move on now (the step follows at the next fit), so a backup
        # written at this epoch end resumes in the next stage.
        model.set_stage(next_index, retrace=False)
        store_run_state(model, "stages", self.history)
        if next_index >= len(model.stages):
            model.run_finished = True


class DevEvaluator(keras.callbacks.Callback):
    """Computes the task's metrics on dev after each epoch and keeps the best student.

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
        # [: n]: numpy batches fill the last one up with copies (data.make_dataset).
        logits = model.predict(self.dataset, verbose=0)[: len(self.labels)]
        values = glue_metrics.compute(self.metric_names, self.labels, logits, self.regression)
        for name, value in values.items():
            logs[f"val_{name}"] = value
        record = {name: float(value) for name, value in values.items()}
        record.update(epoch=epoch + 1, stage=model.active_stage + 1)
        self.history.append(record)
        if not model.stage.trains_classifier:
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
                model.run_finished = True


class EndEpoch(keras.callbacks.Callback):
    """Ends each fit after one epoch (Distiller.fit_schedule calls fit once per epoch, so
    the progress line still reads "Epoch k/total"); put it last."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


class TensorBoard(keras.callbacks.Callback):
    """The epoch logs as TensorBoard scalars, in the layout of Keras' TensorBoard callback
    (``epoch_<name>`` in ``train/``, ``val_<name>`` as ``epoch_<name>`` in
    ``validation/``, plus ``epoch_learning_rate``), written without TensorFlow
    (kd_keras.summaries), so a JAX run writes them too.  Steps are 0-based epochs.

    Args:
        log_dir: the run's TensorBoard folder.
    """

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self.writers: Dict[str, summaries.EventWriter] = {}

    def _writer(self, name: str) -> summaries.EventWriter:
        if name not in self.writers:
            self.writers[name] = summaries.EventWriter(os.path.join(self.log_dir, name))
        return self.writers[name]

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        for name, value in logs.items():
            run, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            self._writer(run).scalar(f"epoch_{tag}", float(value), epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        # Distiller.fit_schedule fits once per epoch: each fit closes its files, the
        # next one opens new files in the same folders.
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


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


class TensorBoardExtras(keras.callbacks.Callback):
    """What Keras' TensorBoard callback does not write: hparams, stage events, attention maps.

    Args:
        log_dir: the run's TensorBoard folder.
        hparams: run settings to record (schedule, lambda, T, layers ...).
        example: one example's features, each int [1, seq], for the attention picture.
    """

    def __init__(self, log_dir: str, hparams: Dict, example: Dict[str, np.ndarray]):
        super().__init__()
        self.writer = summaries.EventWriter(os.path.join(log_dir, "stages"))
        self.hparams = hparams
        self.example = example
        self.stage_at_epoch_start = None
        self.hparams_written = False

    def on_train_begin(self, logs=None):
        if self.hparams_written:
            return
        self.hparams_written = True
        self.writer.hparams(self.hparams)
        self.writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self.stage_at_epoch_start = self.model.active_stage

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        ended = int(keras.ops.convert_to_numpy(model.stage_index)) != self.stage_at_epoch_start
        step = epoch + 1
        self.writer.scalar("stage", self.stage_at_epoch_start + 1, step)
        if ended and model.teacher is not None:
            stage = model.stages[self.stage_at_epoch_start]
            self.writer.text("stage_end", f"{stage.name} ended after epoch {step}", step)
            self.writer.image(f"attention/stage_{self.stage_at_epoch_start + 1}",
                              self.attention_picture(), step)
        self.writer.flush()

    def attention_picture(self) -> np.ndarray:
        """Teacher vs student attention maps (mean over heads) for the fixed example."""
        model = self.model
        teacher = model.teacher.forward(self.example, training=False)
        student = model.student.forward(self.example, training=False)
        length = int(self.example["attention_mask"].sum())

        def mean_map(probabilities):
            return keras.ops.convert_to_numpy(probabilities)[0].mean(0)[:length, :length]

        teacher_maps = [mean_map(teacher.attentions[t - 1]) for _, t in model.mapping]
        student_maps = [mean_map(student.attentions[s - 1]) for s, _ in model.mapping]
        return attention_image(teacher_maps, student_maps)
