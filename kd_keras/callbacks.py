"""The Keras 3 callbacks that steer a run: the NaN guard, stage switching, dev metrics
with best-student keeping, and the one-epoch fits of ``Distiller.fit_schedule``.
(Backups: kd_keras.backup; TensorBoard: kd_keras.tensorboard_logs.)

``Distiller.fit_schedule`` calls ``fit`` once per epoch; between two calls the Distiller
retraces its step for the next stage.  A callback that ends the run sets
``model.run_finished``.  Callbacks keep their bookkeeping in the Distiller's run state,
which backups carry.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import keras
import numpy as np

from kd_keras import backends
from kd_keras import metrics as glue_metrics


def load_run_state(model, key: str, default):
    """Reads one callback's saved bookkeeping from the Distiller's run state."""
    return model.get_run_state().get(key, default)


def store_run_state(model, key: str, value) -> None:
    """Writes one callback's bookkeeping into the run state, which backups carry."""
    state = model.get_run_state()
    state[key] = value
    model.set_run_state(state)


def recorded(model) -> Dict:
    """What the callbacks recorded over a whole training, the epochs before a resume
    included: read from the run state (which backups carry), so that a run resumed
    after its last epoch, which trains nothing, still reports them.

    Returns:
        {"history": metric -> per-epoch values (EpochHistory), "stages": the stages
        ended (StageController), "best_epoch": the best dev record or None and
        "dev_history": every epoch's dev record (DevEvaluator)}.
    """
    state = model.get_run_state()
    dev = state.get("dev", {})
    return {"history": state.get("history", {}), "stages": state.get("stages", []),
            "best_epoch": dev.get("best"), "dev_history": dev.get("history", [])}


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


def tracker_sums(model) -> Dict[str, List[float]]:
    """Each running-mean metric's (total, count) over the epoch's batches so far."""
    return {metric.name: [float(keras.ops.convert_to_numpy(v)) for v in metric.variables]
            for metric in model.metrics if len(metric.variables) == 2}


def epoch_sums_so_far(model, epoch: int) -> Dict[str, List[float]]:
    """Each running mean's (total, count) over the epoch's batches so far: this fit's,
    plus those before the interruption when the epoch was resumed mid-way."""
    sums = tracker_sums(model)
    before = load_run_state(model, "epoch_so_far", None)
    if before and before["epoch"] == epoch:
        for name, (total, count) in before["sums"].items():
            if name in sums:
                sums[name] = [sums[name][0] + total, sums[name][1] + count]
    return sums


class ResumedEpochMeans(keras.callbacks.Callback):
    """Makes the logs of an epoch resumed mid-way the means over all its batches, those
    before the interruption included: Keras starts its running means afresh with each
    fit, so the backup keeps their (total, count) ("epoch_so_far" in the run state) and
    they are added back here.  Put it before the callbacks that read the logs
    (StageController's cosine threshold, EpochHistory, TensorBoard).
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.whole_epoch: Dict[str, List[float]] = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.whole_epoch = {}

    def on_train_batch_end(self, batch, logs=None):
        # Read after the fit's last batch: validation then resets the running means.
        so_far = load_run_state(self.model, "epoch_so_far", None)
        if so_far and so_far["epoch"] == self.epoch and batch + 1 == self.params["steps"]:
            backends.current().sync_variables(self.model)
            self.whole_epoch = epoch_sums_so_far(self.model, self.epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name, (total, count) in self.whole_epoch.items():
                if name in logs:
                    logs[name] = total / max(count, 1.0)
        store_run_state(self.model, "epoch_so_far", None)


class EpochHistory(keras.callbacks.Callback):
    """Every epoch's logs (losses, dev metrics), kept in the run state so that a resumed
    run reports the epochs before its interruption too (callbacks.recorded).  Put it after
    the callbacks that add to the logs.
    """

    def __init__(self):
        super().__init__()
        self.history: Dict[str, List[float]] = {}

    def on_train_begin(self, logs=None):
        self.history = load_run_state(self.model, "history", {})

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        store_run_state(self.model, "history", self.history)


class EndEpoch(keras.callbacks.Callback):
    """Ends each fit after one epoch (Distiller.fit_schedule calls fit once per epoch, so
    the progress line still reads "Epoch k/total"); put it last."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True
