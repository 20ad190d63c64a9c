"""TensorBoard callbacks: the epoch logs as scalars (in the layout of Keras' own
callback), and what Keras' does not write: hparams, stage events and attention pictures.
Written with kd_keras.summaries, without TensorFlow, so a JAX run writes them too."""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import keras
import numpy as np

from kd_keras import summaries


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


def attention_image(teacher_maps: List[np.ndarray], student_maps: List[np.ndarray],
                    pairs: Sequence[Tuple[int, int]], title: str) -> np.ndarray:
    """A labelled picture of head-averaged attention: the teacher's layers on top, the
    matched student layers below, each panel titled with its model and layer, the stage
    as the picture's title.  Drawn with matplotlib's Agg canvas (no global backend set).

    Args:
        teacher_maps: per matched pair, float [seq, seq].
        student_maps: per matched pair, float [seq, seq].
        pairs: [(student layer, teacher layer)] of the maps, 1-based.
        title: what the picture shows, e.g. "stage 2: sid 2/3: layers 1-2".

    Returns:
        uint8 [1, height, width, 3].
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2.0 * len(pairs) + 0.4, 4.6), dpi=80)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(2, len(pairs), squeeze=False)
    for col, (student_layer, teacher_layer) in enumerate(pairs):
        for row, (maps, who, layer) in enumerate(
                ((teacher_maps, "teacher", teacher_layer),
                 (student_maps, "student", student_layer))):
            axis = axes[row][col]
            axis.imshow(maps[col], cmap="Greys", vmin=0.0)
            axis.set_title(f"{who} layer {layer}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[None, ..., :3].copy()


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
            number = self.stage_at_epoch_start + 1
            self.writer.image(f"attention/stage_{number}",
                              self.attention_picture(f"stage {number}: {stage.name}"), step)
        self.writer.flush()

    def attention_picture(self, title: str) -> np.ndarray:
        """Teacher vs student attention maps (mean over heads) for the fixed example."""
        model = self.model
        teacher = model.teacher.forward(self.example, training=False)
        student = model.student.forward(self.example, training=False)
        length = int(self.example["attention_mask"].sum())

        def mean_map(probabilities):
            return keras.ops.convert_to_numpy(probabilities)[0].mean(0)[:length, :length]

        teacher_maps = [mean_map(teacher.attentions[t - 1]) for _, t in model.mapping]
        student_maps = [mean_map(student.attentions[s - 1]) for s, _ in model.mapping]
        return attention_image(teacher_maps, student_maps, model.mapping, title)
