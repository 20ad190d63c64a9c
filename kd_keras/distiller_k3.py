"""The Keras 3 Distiller (redesign step 2, TensorFlow backend): a keras.Model whose
train_step runs the frozen teacher and the student (kd_keras.encoders) and sums the loss
terms (kd_keras.terms) of the current stage.

Each stage is a list of terms; ``terms.requirements`` decides how much of each model the
step runs.  The stage index lives in a variable, so checkpoints carry it, and the step is
retraced when the stage changes.  It replaces distiller.py once the pipeline moves to
Keras 3; until then nothing in the pipeline uses it.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import keras
from keras import ops

from kd_keras import schedules, terms as terms_lib
from kd_keras.encoders import EncoderClassifier, EncoderOutputs
from kd_keras.terms import Term

TEACHER_LOGITS = "teacher_logits"  # batch key of precomputed teacher logits


def stage_terms(stage: schedules.Stage, mapping: Sequence[Tuple[int, int]],
                internal: Sequence[str] = terms_lib.DEFAULT_LAYER_TERMS,
                internal_weights: Optional[Dict[str, float]] = None,
                hard_label_weight: float = 0.1, temperature: float = 1.0,
                regression: bool = False) -> List[Term]:
    """The terms a schedule stage turns on.

    Args:
        stage: from schedules.build_schedule.
        mapping: [(student layer, teacher layer)], 1-based; stage.pairs index into it.
        internal: per-pair term names (terms.LAYER_TERMS keys).
        internal_weights: name -> weight of the per-pair terms.
        hard_label_weight: lambda of soft + lambda * hard.
        temperature: soft-label temperature.
        regression: squared errors instead of cross-entropies for the label terms.
    """
    if stage.hard_only:
        return [terms_lib.HardLabel(regression=regression)]
    active = (terms_lib.kd_terms(hard_label_weight, temperature, regression=regression)
              if stage.kd else [])
    for index in stage.pairs:
        active += terms_lib.layer_terms(internal, mapping[index], internal_weights)
    return active


class StageWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` and linear decay to 0 over the whole run; with
    ``stage_start`` (the Distiller's variable) the warm-up starts again at each stage.

    Args:
        peak: the highest learning rate.
        total_steps: steps of the whole run.
        warmup_steps: steps of each warm-up.
        stage_start: int64 variable holding the step the current stage began at, or None
            for one warm-up at the start of the run.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, stage_start=None):
        super().__init__()
        self.peak, self.total_steps = float(peak), max(int(total_steps), 1)
        self.warmup_steps, self.stage_start = int(warmup_steps), stage_start

    def __call__(self, step):
        step = ops.cast(step, "float32")
        start = 0.0 if self.stage_start is None else ops.cast(self.stage_start, "float32")
        warm = ops.minimum((step - start) / max(self.warmup_steps, 1), 1.0)
        remaining = ops.maximum(float(self.total_steps) - step, 0.0)
        decay = ops.minimum(remaining / max(self.total_steps - self.warmup_steps, 1), 1.0)
        return self.peak * warm * decay

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


def _global_mean(per_example):
    """Mean over the global batch: under tf.distribute each replica divides its sum by
    the global batch size, so N replicas make the update one replica makes (Keras' raw
    ops do not scale by the replica count by themselves)."""
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    batch = ops.cast(ops.shape(per_example)[0], "float32") * replicas
    return ops.sum(per_example) / batch


class Distiller(keras.Model):
    """Distils ``teacher`` into ``student`` stage by stage.

    Args:
        student: the model being trained.
        teacher: the frozen teacher, or None when every stage is plain fine-tuning.
        stages: per stage, its terms (stage_terms).
        cached_teacher_logits: batches carry the teacher's logits under TEACHER_LOGITS
            (computed once before training); label terms then run no teacher.
        evaluation_terms: what test_step reports (every term of every pair, say); the
            last stage's terms when None.
        freeze_lower_layers: a stage with layer pairs trains only the student layers from
            its lowest pair up (and their projections): the embeddings and the layers
            below stay as they are, and so does the classifier unless a term reads the
            logits.  PID as the paper describes it: one layer optimised at a time.
    """

    def __init__(self, student: EncoderClassifier, teacher: Optional[EncoderClassifier],
                 stages: Sequence[Sequence[Term]], cached_teacher_logits: bool = False,
                 evaluation_terms: Optional[Sequence[Term]] = None,
                 freeze_lower_layers: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.freeze_lower_layers = freeze_lower_layers
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        elif any(term.uses_teacher for stage in stages for term in stage):
            raise ValueError("Only the finetune schedule runs without a teacher.")
        self.stages = [list(stage) for stage in stages]
        self.evaluation_terms = list(evaluation_terms or self.stages[-1])
        self.cached_teacher_logits = cached_teacher_logits
        every = self.stages + [self.evaluation_terms]
        self.projections = {}
        if teacher is not None and teacher.hidden_size != student.hidden_size:
            # Student vectors to the teacher's width, one per student layer; trained, never
            # exported.  Built here: layers first built inside a step under a strategy fail.
            for layer in sorted({term.pair[0] for stage in every for term in stage
                                 if term.pair is not None}):
                projection = keras.layers.Dense(teacher.hidden_size, name=f"proj_s{layer}")
                projection.build((None, student.hidden_size))
                self.projections[layer] = projection
        self.stage_index = keras.Variable(0, dtype="int64", trainable=False,
                                          name="stage_index")
        # The optimizer step at which the current stage began (StageWarmup reads it).
        self.stage_start = keras.Variable(0, dtype="int64", trainable=False,
                                          name="stage_start")
        self.active_stage = 0
        names = ["loss"] + sorted({term.name for stage in every for term in stage})
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.accuracy = (keras.metrics.SparseCategoricalAccuracy(name="accuracy")
                         if student.num_labels > 1 else None)
        self.built = True  # every part is built already

    # ------------------------------------------------------------------ stages

    @property
    def terms(self) -> List[Term]:
        """The terms the compiled step currently computes."""
        return self.stages[self.active_stage]

    def set_stage(self, index: int) -> None:
        """Moves to stage ``index`` from the current optimizer step, and retraces."""
        self.stage_index.assign(index)
        if getattr(self, "optimizer", None) is not None:
            self.stage_start.assign(ops.cast(self.optimizer.iterations, "int64"))
        self.sync_stage()

    def sync_stage(self) -> bool:
        """Makes the step follow ``stage_index`` (after a restore, say); True when the
        stage changed."""
        index = min(int(self.stage_index.numpy()), len(self.stages) - 1)
        changed = index != self.active_stage
        self.active_stage = index
        if changed:
            self.train_function = None
        return changed

    @property
    def trainable_student_variables(self) -> List:
        """Everything the optimizer may update: the student and the projections."""
        variables = list(self.student.trainable_variables)
        for projection in self.projections.values():
            variables += projection.trainable_variables
        return variables

    def stage_variables(self, active: Sequence[Term]) -> List:
        """What a stage may update: everything, or with freeze_lower_layers the student
        layers from its lowest pair up (the classifier only if it reads the logits)."""
        pairs = [term.pair for term in active if term.pair is not None]
        if not self.freeze_lower_layers or not pairs:
            return self.trainable_student_variables
        lowest = min(student_layer for student_layer, _ in pairs)
        variables = [] if lowest > 0 else list(self.student.embeddings.trainable_variables)
        for number, layer in enumerate(self.student.encoder_layers, start=1):
            if number >= lowest:
                variables += layer.trainable_variables
        if any(terms_lib.LOGITS in term.needs for term in active):
            variables += self.student.head.trainable_variables
        for number, projection in self.projections.items():
            if number >= lowest:
                variables += projection.trainable_variables
        return variables

    def build_optimizer(self) -> None:
        """Creates the optimizer's slots for every trainable variable up front: stages
        update different subsets."""
        self.optimizer.build(self.trainable_student_variables)

    # ------------------------------------------------------------------ forward

    @property
    def metrics(self):
        # Ours only: Keras' own loss tracker would show 0, as train_step never feeds it.
        return list(self.trackers.values()) + ([self.accuracy] if self.accuracy else [])

    def call(self, inputs, training=False):
        """Student logits [batch, num_labels]."""
        return self.student(inputs, training=training)

    def requirements(self, x: Dict, active: Sequence[Term]) -> terms_lib.Requirements:
        """How much of each model the active terms need on this batch."""
        return terms_lib.requirements(active, self.student.num_layers,
                                      self.teacher.num_layers if self.teacher else 0,
                                      self.cached_teacher_logits and TEACHER_LOGITS in x)

    def teacher_outputs(self, x: Dict, active: Sequence[Term]) -> Optional[EncoderOutputs]:
        """What the active terms read of the frozen teacher (training=False)."""
        needs = self.requirements(x, active)
        outputs = EncoderOutputs(None, [], [])
        if needs.teacher_layers is not None:
            outputs = self.teacher.forward(
                x, training=False, num_layers=needs.teacher_layers,
                with_logits=needs.teacher_logits, output_attentions=needs.attentions,
                cls_only_last=needs.teacher_cls_only)
        if outputs.logits is None and TEACHER_LOGITS in x:
            outputs.logits = x[TEACHER_LOGITS]
        return outputs

    def compute_terms(self, x: Dict, y, active: Sequence[Term], teacher: Optional[EncoderOutputs],
                      training: bool):
        """Per-example loss terms.

        Args:
            x: input_ids, attention_mask, token_type_ids int [batch, seq] (and
                TEACHER_LOGITS float [batch, labels] when cached).
            y: labels [batch].
            active: the terms to compute.
            teacher: teacher_outputs(x, active).
            training: student dropout on.

        Returns:
            (total float32 [batch], term name -> float32 [batch], student logits or None).
        """
        needs = self.requirements(x, active)
        student = self.student.forward(
            x, training=training, num_layers=needs.student_layers,
            with_logits=needs.student_logits, output_attentions=needs.attentions,
            cls_only_last=needs.student_cls_only)
        batch = dict(x, labels=y)
        values, total = {}, 0.0
        for term in active:
            projection = self.projections.get(term.pair[0]) if term.pair else None
            values[term.name] = ops.cast(term(teacher, student, batch, projection), "float32")
            total = total + term.weight * values[term.name]
        logits = None if student.logits is None else ops.cast(student.logits, "float32")
        return total, values, logits

    def _update_metrics(self, total, values, y, logits) -> Dict:
        self.trackers["loss"].update_state(total)
        for name, value in values.items():
            self.trackers[name].update_state(value)
        results = {name: self.trackers[name].result() for name in ["loss", *values]}
        if self.accuracy is not None and logits is not None:
            self.accuracy.update_state(y, logits)
            results["accuracy"] = self.accuracy.result()
        return results

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        active = self.terms
        teacher = self.teacher_outputs(x, active)  # outside the tape: the teacher is frozen
        variables = self.stage_variables(active)
        with tf.GradientTape() as tape:
            total, values, logits = self.compute_terms(x, y, active, teacher, training=True)
            loss = _global_mean(total)
        gradients = tape.gradient(loss, variables)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        results = self._update_metrics(total, values, y, logits)
        results["stage"] = ops.cast(self.stage_index, "float32") + 1.0
        return results

    def test_step(self, data):
        x, y = data
        x = {k: v for k, v in x.items() if k != TEACHER_LOGITS}
        active = self.evaluation_terms
        total, values, logits = self.compute_terms(x, y, active, self.teacher_outputs(x, active),
                                                   training=False)
        return self._update_metrics(total, values, y, logits)
