"""The Distiller: a Keras model whose train_step distils a teacher into a student.

Each step runs the frozen teacher (training=False, outside the GradientTape) and the
student, then sums the losses the current stage turns on:

    loss = kd_weight * (soft + lambda * hard)
           + sum over active pairs (s, t) of w * (attention_KL(t, s) + cos_loss(t, s))

The stage (index, epochs spent in it, loss weights) lives in tf.Variables, so checkpoints
carry it.  The step is traced per stage: a stage that needs student layers 1..k and
teacher layers up to match(k) runs only those, and skips the classifier heads when no
loss uses them (callbacks.StageController rebuilds the step when the stage changes).
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence, Tuple

import kd_keras  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras

from kd_keras import losses
from kd_keras.models import BertAdapter, dropout_seeded_by, seed_dropout
from kd_keras.schedules import Stage

TEACHER_LOGITS = "teacher_logits"  # optional feature: precomputed teacher logits


class WarmupLinearDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then linear decay to 0."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        super().__init__()
        self.peak = float(peak)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * step / max(self.warmup_steps, 1)
        remaining = tf.maximum(float(self.total_steps) - step, 0.0)
        decay = self.peak * remaining / max(self.total_steps - self.warmup_steps, 1)
        return tf.where(step < self.warmup_steps, warmup, decay)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


def make_optimizer(learning_rate: float, total_steps: int, warmup_proportion: float,
                   weight_decay: float):
    """AdamW with warm-up and linear decay; LayerNorm and biases get no weight decay."""
    schedule = WarmupLinearDecay(learning_rate, total_steps,
                                 int(round(total_steps * warmup_proportion)))
    optimizer = tf_keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay,
                                          epsilon=1e-6, clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])
    return optimizer


RUN_STATE_BYTES = 1 << 16


def _float32(tensor: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
    return None if tensor is None else tf.cast(tensor, tf.float32)


def term_names(mapping: Sequence[Tuple[int, int]]) -> Tuple[List[str], List[str]]:
    """Metric names of the per-pair losses: (attention KL names, cosine names)."""
    attention = [f"att_kl_s{s}_t{t}" for s, t in mapping]
    cosine = [f"cos_s{s}_t{t}" for s, t in mapping]
    return attention, cosine


class Distiller(tf_keras.Model):
    """Distils ``teacher`` into ``student`` following a list of stages.

    Args:
        student: the model being trained.
        teacher: the frozen teacher, or None for plain fine-tuning.
        mapping: [(student_layer, teacher_layer)], 1-based.
        stages: the schedule (schedules.build_schedule).
        regression: the task predicts one real number (STS-B): the soft-label loss is
            the squared error to the teacher's prediction and the hard-label loss the
            squared error to the gold score.
        hard_label_weight: lambda in soft + lambda * hard.
        temperature: soft-label temperature.
        attention_weight: weight of each attention KL term.
        cosine_weight: weight of each [CLS] cosine term.
        seed: seeds the student's dropout masks, which are drawn per training step
            (see models.seed_dropout) so that resumed runs repeat them.
        cached_teacher_logits: training batches carry the teacher's logits under
            TEACHER_LOGITS (computed once before training), so stages that read only
            them run no teacher.
    """

    def __init__(self, student: BertAdapter, teacher: Optional[BertAdapter],
                 mapping: Sequence[Tuple[int, int]], stages: Sequence[Stage],
                 regression: bool = False, hard_label_weight: float = 0.1,
                 temperature: float = 1.0, attention_weight: float = 1.0,
                 cosine_weight: float = 1.0, seed: int = 0,
                 cached_teacher_logits: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.student_model = student.model  # tracked: trained and checkpointed
        if teacher is not None:
            teacher.model.trainable = False
            self.teacher_model = teacher.model
            if any(st.internal for st in stages) and teacher.num_heads != student.num_heads:
                from kd_keras.models import ModelError
                raise ModelError(
                    f"Attention distillation needs equal head counts: teacher has "
                    f"{teacher.num_heads}, student {student.num_heads}. Give the student "
                    f"{teacher.num_heads} heads or use --schedule=kd.")
        elif any(st.uses_teacher for st in stages):
            raise ValueError("Only the finetune schedule runs without a teacher.")
        self.mapping = list(mapping)
        self.stages = list(stages)
        self.regression = regression
        self.hard_label_weight = hard_label_weight
        self.temperature = temperature
        self.attention_weight = attention_weight
        self.cosine_weight = cosine_weight
        self.cached_teacher_logits = cached_teacher_logits

        self.projections = None
        if teacher is not None and teacher.hidden_size != student.hidden_size:
            # Maps student [CLS] vectors to the teacher's width; trained, never exported.
            self.projections = [tf_keras.layers.Dense(teacher.hidden_size, name=f"proj_s{s}")
                                for s, _ in self.mapping]
            for layer in self.projections:
                layer.build((None, student.hidden_size))

        self.stage_index = tf.Variable(0, trainable=False, dtype=tf.int64, name="stage_index")
        self.epochs_in_stage = tf.Variable(0, trainable=False, dtype=tf.int64,
                                           name="epochs_in_stage")
        self.pair_weights = tf.Variable(tf.zeros([len(self.mapping)]), trainable=False,
                                        name="pair_weights")
        self.kd_weight = tf.Variable(0.0, trainable=False, name="kd_weight")
        # The callbacks' bookkeeping (stage history, best dev score) as JSON bytes, so a
        # checkpoint restores it with the weights and the stage.  Numeric, not a string
        # variable: multi-worker strategies cannot broadcast strings.
        self.run_state = tf.Variable(tf.zeros([RUN_STATE_BYTES], tf.int32), trainable=False,
                                     name="run_state")
        seed_dropout(student, seed)
        self.active_stage = 0
        self._apply_stage_weights(0)

        self.attention_names, self.cosine_names = term_names(self.mapping)
        names = ["loss", "soft", "hard"] + self.attention_names + self.cosine_names
        self.trackers = {name: tf_keras.metrics.Mean(name=name) for name in names}
        self.accuracy_tracker = (None if regression else
                                 tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        # train_step returns metric results that are already global; Keras' default
        # ("sum" over workers) would multiply them by the worker count.
        self.distribute_reduction_method = "first"
        # Every sub-model is built already; BackupAndRestore only restores built models.
        self.built = True

    # ------------------------------------------------------------------ stage state

    def get_run_state(self) -> Dict:
        """The bookkeeping dict last stored with set_run_state ({} at first)."""
        raw = self.run_state.numpy()
        end = int(np.argmin(raw)) if (raw == 0).any() else len(raw)
        return json.loads(raw[:end].astype(np.uint8).tobytes().decode("utf-8") or "{}")

    def set_run_state(self, state: Dict) -> None:
        """Stores a JSON-able dict in the checkpointed run_state variable."""
        encoded = np.frombuffer(json.dumps(state).encode("utf-8"), np.uint8)
        if len(encoded) > RUN_STATE_BYTES:
            raise ValueError(f"Run bookkeeping outgrew {RUN_STATE_BYTES} bytes.")
        padded = np.zeros([RUN_STATE_BYTES], np.int32)
        padded[: len(encoded)] = encoded
        self.run_state.assign(padded)

    @property
    def stage(self) -> Stage:
        """The stage the compiled step currently implements."""
        return self.stages[self.active_stage]

    def _apply_stage_weights(self, index: int) -> None:
        stage = self.stages[min(index, len(self.stages) - 1)]
        weights = [1.0 if p in stage.pairs else 0.0 for p in range(len(self.mapping))]
        self.pair_weights.assign(weights)
        self.kd_weight.assign(1.0 if stage.kd or stage.hard_only else 0.0)

    def set_stage(self, index: int, reset_epochs: bool = True) -> None:
        """Moves to stage ``index``: updates the variables and retraces the step."""
        self.stage_index.assign(index)
        if reset_epochs:
            self.epochs_in_stage.assign(0)
        self.sync_stage()

    def sync_stage(self) -> bool:
        """Makes the traced step follow ``stage_index`` (after a restore, say).

        Returns:
            True when the stage changed and the step was rebuilt.
        """
        index = min(int(self.stage_index.numpy()), len(self.stages) - 1)
        changed = index != self.active_stage
        self.active_stage = index
        self._apply_stage_weights(index)
        if changed:
            self.train_function = None
            self.make_train_function(force=True)
        return changed

    @property
    def trainable_student_variables(self) -> List[tf.Variable]:
        """Everything the optimizer may update: student and projections, never the teacher."""
        variables = list(self.student.trainable_variables)
        for layer in self.projections or []:
            variables += layer.trainable_variables
        return variables

    def build_optimizer(self) -> None:
        """Creates optimizer slots for every trainable variable up front.

        Stages update different subsets; Keras' optimizer refuses variables it has not
        seen at its first step, so it is built over all of them once.
        """
        self.optimizer.build(self.trainable_student_variables)

    # ------------------------------------------------------------------ forward

    @property
    def metrics(self):
        trackers = list(self.trackers.values())
        return trackers + ([self.accuracy_tracker] if self.accuracy_tracker else [])

    def call(self, inputs, training=False):
        """Student logits [batch, num_labels]."""
        return self.student.logits(inputs, training=training)

    def _depths(self, stage: Stage, cached_logits: bool) -> Tuple[Optional[int], Optional[int]]:
        """Student and teacher layers a stage needs (None: all, with the heads)."""
        if stage.kd or stage.hard_only:
            student_layers = None
        else:
            student_layers = max(self.mapping[p][0] for p in stage.pairs)
        if not stage.pairs:
            teacher_layers = None if not cached_logits else 0
        elif stage.kd and not cached_logits:
            teacher_layers = None
        else:
            teacher_layers = max(self.mapping[p][1] for p in stage.pairs)
        return student_layers, teacher_layers

    def compute_terms(self, x: Dict[str, tf.Tensor], y: tf.Tensor, stage: Stage,
                      training: bool) -> Tuple[tf.Tensor, Dict[str, tf.Tensor], tf.Tensor]:
        """Per-example loss terms of one stage.

        Args:
            x: input_ids, attention_mask, token_type_ids int [batch, seq]; optionally
                teacher_logits float [batch, num_labels].
            y: labels [batch].
            stage: which terms to compute.
            training: student dropout on.

        Returns:
            (total loss [batch], term name -> [batch], student logits [batch, labels] or
            None).
        """
        cached = self.cached_teacher_logits and TEACHER_LOGITS in x
        student_layers, teacher_layers = self._depths(stage, cached)
        teacher_out = None
        if stage.uses_teacher and teacher_layers != 0:
            teacher_out = self.teacher(x, training=False, num_layers=teacher_layers,
                                       with_logits=teacher_layers is None, cls_only_last=True)
        # Losses read the deepest computed layer only at [CLS] (cosine, pooler).
        student_out = self.student(x, training=training, num_layers=student_layers,
                                   with_logits=student_layers is None, cls_only_last=True)
        batch = tf.shape(x["input_ids"])[0]
        total = tf.zeros([batch], tf.float32)
        terms: Dict[str, tf.Tensor] = {}
        # Under a mixed precision policy the models compute in float16/bfloat16; every
        # loss is taken in float32.
        logits = _float32(student_out.logits)
        if stage.hard_only:
            terms["hard"] = self._hard(y, logits)
            total += self.kd_weight * terms["hard"]
        elif stage.kd:
            teacher_logits = x[TEACHER_LOGITS] if cached else _float32(teacher_out.logits)
            if self.regression:
                terms["soft"] = losses.regression_mse(teacher_logits, logits, reduction="none")
            else:
                terms["soft"] = losses.soft_label_ce(teacher_logits, logits, self.temperature,
                                                     reduction="none")
            terms["hard"] = self._hard(y, logits)
            total += self.kd_weight * (terms["soft"] + self.hard_label_weight * terms["hard"])
        for p in stage.pairs:
            s, t = self.mapping[p]
            attention = losses.attention_kl(_float32(teacher_out.attentions[t - 1]),
                                            _float32(student_out.attentions[s - 1]),
                                            x["attention_mask"], reduction="none")
            student_cls = student_out.hidden_states[s][:, 0]
            if self.projections:
                student_cls = self.projections[p](student_cls)
            cosine = losses.cls_cosine_loss(_float32(teacher_out.hidden_states[t][:, 0]),
                                            _float32(student_cls), reduction="none")
            terms[self.attention_names[p]] = attention
            terms[self.cosine_names[p]] = cosine
            total += self.pair_weights[p] * (self.attention_weight * attention
                                             + self.cosine_weight * cosine)
        return total, terms, logits

    def _hard(self, y, logits):
        if self.regression:
            return losses.regression_mse(y, logits, reduction="none")
        return losses.hard_label_ce(y, logits, reduction="none")

    def _update_metrics(self, total, terms, y, logits) -> Dict[str, tf.Tensor]:
        self.trackers["loss"].update_state(total)
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        shown = ["loss"] + list(terms)
        results = {name: self.trackers[name].result() for name in shown}
        if self.accuracy_tracker is not None and logits is not None:
            self.accuracy_tracker.update_state(y, logits)
            results["accuracy"] = self.accuracy_tracker.result()
        return results

    def train_step(self, data):
        x, y = data
        variables = self.trainable_student_variables
        with tf.GradientTape() as tape, dropout_seeded_by(self.student,
                                                          self.optimizer.iterations):
            total, terms, logits = self.compute_terms(x, y, self.stage, training=True)
            # Scaled for the global batch: N replicas make the same update as one.
            loss = tf.nn.compute_average_loss(total)
            scaled = isinstance(self.optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
            if scaled:  # float16: scale the loss up so small gradients do not vanish
                loss = self.optimizer.get_scaled_loss(loss)
        gradients = tape.gradient(loss, variables)
        if scaled:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        updates = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        self.optimizer.apply_gradients(updates)
        results = self._update_metrics(total, terms, y, logits)
        results["stage"] = tf.cast(self.stage_index, tf.float32) + 1.0
        return results

    def evaluation_stage(self) -> Stage:
        """Every term at once, for dev curves of each layer in every stage."""
        if self.teacher is None:
            return Stage("eval", (), False, True, 1)
        return Stage("eval", tuple(range(len(self.mapping))), True, False, 1)

    def test_step(self, data):
        x, y = data
        x = {k: v for k, v in x.items() if k != TEACHER_LOGITS}
        total, terms, logits = self.compute_terms(x, y, self.evaluation_stage(), training=False)
        return self._update_metrics(total, terms, y, logits)
