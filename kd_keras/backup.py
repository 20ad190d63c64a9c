"""Backups for exact resume: everything a resumed run needs (the Distiller's backup
variables, its position and the callbacks' bookkeeping) in one folder, written whole
and renamed into place, restored before training continues, and removed once the run
is done.

Two are kept: writing a backup moves the last one to ``<backup>.previous`` first, so a
damaged backup (a truncated or altered file: the variables' zip CRC or the state's JSON
tells) is passed over for the one before it, and the run resumes from there.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np

from kd_keras import backends, callbacks, distribute, files
from kd_keras.errors import DiskFull, Preempted, UserError

STATE_FILE, VARIABLES_FILE = "state.json", "variables.npz"
PREVIOUS = ".previous"


def _read(folder: str) -> Tuple[Dict, List[np.ndarray]]:
    """A backup folder's state and variable values.

    Raises:
        Exception: the folder is incomplete or damaged (whatever reading it raises).
    """
    with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as handle:
        state = json.load(handle)
    if not isinstance(state, dict) or not {"epoch", "batch", "run_state"} <= set(state):
        raise ValueError(f"{STATE_FILE} lacks the position")
    with np.load(os.path.join(folder, VARIABLES_FILE)) as saved:
        values = [saved[f"v{i}"] for i in range(len(saved.files))]  # CRC checked here
    return state, values


def latest(backup_dir: str) -> Optional[Tuple[Dict, List[np.ndarray]]]:
    """The newest readable backup's (state, values): backup_dir, or the one before it
    when backup_dir is damaged or was being replaced; None when there is none.

    Raises:
        UserError: backups exist and none can be read.
    """
    candidates = [folder for folder in (backup_dir, backup_dir + PREVIOUS)
                  if os.path.isdir(folder)]
    problems = []
    for folder in candidates:
        try:
            found = _read(folder)
        except Exception as error:  # noqa: BLE001 (any damage: try the previous backup)
            problems.append(f"{folder}: {type(error).__name__}: {error}")
            continue
        if problems:
            print(f"The backup {problems[0]} is damaged; resuming from the previous backup, "
                  f"{folder}.")
        return found
    if problems:
        raise UserError(f"Every backup is damaged ({'; '.join(problems)}); remove "
                        f"{backup_dir} and {backup_dir + PREVIOUS} to start this training "
                        "again.")
    return None


def position(backup_dir: str, steps_per_epoch: int) -> Tuple[int, int]:
    """Where a run resumes: (epoch, batch) after the last backup, or (0, 0) without one."""
    found = latest(backup_dir)
    if found is None:
        return 0, 0
    epoch, batch = int(found[0]["epoch"]), int(found[0]["batch"])
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
        preemption: a preemption.Preemption; once it has received a signal, training
            stops at the next batch boundary, after a backup (errors.Preempted).
    """

    def __init__(self, backup_dir: str, steps_per_epoch: int, save_steps: int = 0,
                 writes: bool = True, preemption=None):
        super().__init__()
        self.backup_dir = backup_dir
        self.steps_per_epoch = steps_per_epoch
        self.save_steps = save_steps
        self.writes = writes
        self.preemption = preemption
        self.epoch = 0
        self.restored = False

    def restore(self) -> bool:
        """Loads the backup into the model, if there is one (once per run)."""
        if self.restored:
            return False
        self.restored = True
        found = latest(self.backup_dir)
        if found is None:
            return False
        state, values = found
        variables = self.model.backup_variables()
        if len(values) != len(variables) or any(
                tuple(v.shape) != value.shape for v, value in zip(variables, values)):
            raise ValueError(f"The backup in {self.backup_dir} does not fit this model; "
                             "remove it to start again.")
        for variable, value in zip(variables, values):
            variable.assign(value)
        run_state = dict(state["run_state"])
        if state.get("epoch_so_far") and state["batch"] < self.steps_per_epoch:
            # The running means of the epoch's batches before the backup
            # (callbacks.ResumedEpochMeans).
            run_state["epoch_so_far"] = {"epoch": state["epoch"],
                                         "sums": state["epoch_so_far"]}
        self.model.set_run_state(run_state)
        return True

    def position(self) -> Tuple[int, int]:
        """Where training continues: (epoch, batch), (0, 0) without a backup."""
        return position(self.backup_dir, self.steps_per_epoch)

    def on_train_begin(self, logs=None):
        self.restore()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        # Counted here, not read after each batch: on JAX the variables hold their values
        # only between epochs unless a callback syncs them (which costs a copy).
        self.steps_before_epoch = int(keras.ops.convert_to_numpy(
            self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        next_batch = self.model.first_batch + batch + 1
        if next_batch >= self.steps_per_epoch:
            # The epoch-end backup follows, once the callbacks that close the epoch (stage
            # control, dev evaluation) have run: a backup here would resume in the next
            # epoch without them.
            return
        if self.preemption is not None and self.preemption.received:
            self.save(self.epoch, next_batch)
            self._stop(self.epoch, next_batch)
        if self.save_steps and (self.steps_before_epoch + batch + 1) % self.save_steps == 0:
            self.save(self.epoch, next_batch)

    def _stop(self, epoch: int, next_batch: int) -> None:
        """Ends training after a signal (the backup is written)."""
        raise Preempted(f"{self.preemption.received} received: training stopped before "
                        f"epoch {epoch + 1}, batch {next_batch + 1}, with a backup in "
                        f"{self.backup_dir}; run the same command again to resume.")

    def save(self, epoch: int, next_batch: int) -> None:
        """Writes the backup: training continues at (epoch, next_batch)."""
        if not self.writes:
            return
        backends.current().sync_variables(self.model)
        variables = self.model.backup_variables()
        arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}
        run_state = self.model.get_run_state()
        run_state.pop("epoch_so_far", None)  # this resume's: the sums below include it
        mid_epoch = next_batch < self.steps_per_epoch
        previous = self.backup_dir + PREVIOUS
        try:
            with files.atomic_folder(previous + ".next") as staging:
                np.savez(os.path.join(staging, VARIABLES_FILE), **arrays)
                files.write_json(os.path.join(staging, STATE_FILE),
                                 {"epoch": epoch, "batch": next_batch,
                                  "run_state": run_state,
                                  "epoch_so_far": callbacks.epoch_sums_so_far(
                                      self.model, epoch) if mid_epoch else None})
        except DiskFull:
            raise files.disk_full(self.backup_dir) from None
        # Killed between these renames, a run still finds a whole backup: the new one,
        # the last one, or the last one under .previous.
        if os.path.isdir(self.backup_dir):
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(self.backup_dir, previous)
        os.replace(previous + ".next", self.backup_dir)

    def closing_callback(self) -> keras.callbacks.Callback:
        backup = self

        class _EpochEndBackup(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                backup.save(epoch, backup.steps_per_epoch)
                if backup.preemption is not None and backup.preemption.received:
                    backup._stop(epoch + 1, 0)

        return _EpochEndBackup()


def remove(backup_root: str, run_name: str, strategy) -> None:
    """Removes a finished run's backup: nothing is left to resume.

    Every worker backs up into the same backup_root (the chief's folder, which all of
    them resume from), so only the chief removes it, and only after every worker has
    finished writing its last backup: a worker that removed it as soon as its own fit()
    returned deleted the other worker's checkpoint while it was being written.
    """
    distribute.wait_for_all_workers(strategy)
    if distribute.is_chief(strategy):
        discard(backup_root, run_name)


def discard(backup_root: str, run_name: str) -> None:
    """Removes a backup (and its previous one) at once: for the chief only, when no
    worker can be writing it (remove waits for them)."""
    for suffix in ("", PREVIOUS, PREVIOUS + ".next"):
        shutil.rmtree(os.path.join(backup_root, run_name + suffix), ignore_errors=True)
    try:
        os.rmdir(backup_root)  # only if empty: another run's backup may still be there
    except OSError:
        pass
