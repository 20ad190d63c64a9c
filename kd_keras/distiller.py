"""The Distiller: a Keras 3 model whose train_step runs the frozen teacher and the
student (kd_keras.encoders) and sums the loss terms (kd_keras.terms) of the current stage.

    loss = kd_weight * (soft + lambda * hard)
           + sum over the stage's layer pairs (s, t) of the per-pair terms
             (by default attention KL(t || s) + squared [CLS] cosine distance)

Each stage is a list of terms; ``terms.requirements`` decides how much of each model the
step runs (student layers up to the deepest active pair, the teacher up to its match, the
heads only when logits are read).  The stage lives in variables (``stage_index``,
``epochs_in_stage``, ``stage_start``), so backups carry it, and the step is retraced when
the stage changes (``sync_stage``).

The loss of a step is defined here once (``teacher_outputs``, ``compute_terms``, what a
step updates in ``step_variables``, ``update_metrics``); ``kd_keras.backends`` runs it
on TensorFlow (a GradientTape) or JAX (a stateless jitted step).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
from keras import ops

from kd_keras import backends, callbacks as callbacks_lib, schedules, terms as terms_lib
from kd_keras.encoders import EncoderClassifier, EncoderOutputs
from kd_keras.terms import Term


def stage_terms(stage: schedules.Stage, mapping: Sequence[Tuple[int, int]],
                internal: Sequence[str] = terms_lib.DEFAULT_LAYER_TERMS,
                internal_weights: Optional[Dict[str, float]] = None,
                hard_label_weight: float = 0.1, temperature: float = 1.0,
                regression: bool = False) -> List[Term]:
    """The terms a schedule stage turns on.

    Args:
        stage: from schedules.build_schedule.
        mapping: [(student layer, teacher layer)], 1-based; stage.pairs index into it.
        internal: per-pair term names (terms.LAYER_TERMS keys), and optionally
            terms.EMBEDDING_TERM, which adds the embedding-layer MSE to every stage that
            trains the first layer pair (each sid stage, pid's first, all).
        internal_weights: name -> weight of the per-pair terms.
        hard_label_weight: lambda of soft + lambda * hard.
        temperature: soft-label temperature.
        regression: squared errors instead of cross-entropies for the label terms.

    Raises:
        ValueError: an unknown internal term name.
    """
    per_pair = [name for name in internal if name != terms_lib.EMBEDDING_TERM]
    terms_lib.layer_terms(per_pair, (1, 1))  # unknown names fail here, for every stage
    if stage.hard_only:
        return [terms_lib.HardLabel(regression=regression)]
    active = (terms_lib.kd_terms(hard_label_weight, temperature, regression=regression)
              if stage.kd else [])
    if 0 in stage.pairs and terms_lib.EMBEDDING_TERM in internal:
        active.append(terms_lib.embedding_term(
            (internal_weights or {}).get(terms_lib.EMBEDDING_TERM, 1.0)))
    for index in stage.pairs:
        active += terms_lib.layer_terms(per_pair, mapping[index], internal_weights)
    return active


def evaluation_terms(mapping: Sequence[Tuple[int, int]], with_teacher: bool,
                     **term_options) -> List[Term]:
    """What validation reports: with a teacher every term of every pair and the label
    terms, so dev curves show each layer in every stage; without one the hard labels."""
    if not with_teacher:
        return [terms_lib.HardLabel(regression=term_options.get("regression", False))]
    everything = schedules.Stage("eval", tuple(range(len(mapping))), True, False, 1)
    return stage_terms(everything, mapping, **term_options)


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
        warm = (ops.minimum((step - start) / self.warmup_steps, 1.0) if self.warmup_steps
                else 1.0)
        remaining = ops.maximum(float(self.total_steps) - step, 0.0)
        decay = ops.minimum(remaining / max(self.total_steps - self.warmup_steps, 1), 1.0)
        return self.peak * warm * decay

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


def make_optimizer(learning_rate: float, total_steps: int, warmup_proportion: float,
                   weight_decay: float, stage_start=None) -> keras.optimizers.AdamW:
    """AdamW (epsilon 1e-6, gradient norm clipped at 1) with linear warm-up and decay;
    LayerNorm weights and biases get no weight decay.

    Args:
        learning_rate: the peak.
        total_steps: optimizer steps of the whole run.
        warmup_proportion: share of total_steps spent warming up.
        weight_decay: decoupled weight decay.
        stage_start: Distiller.stage_start to restart the warm-up at each stage, or None.
    """
    schedule = StageWarmup(learning_rate, total_steps,
                           int(round(total_steps * warmup_proportion)), stage_start)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay,
                                       epsilon=1e-6, clipnorm=1.0)
    # Keras names LayerNormalization's weights gamma and beta.
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def _default_schedule(stages: Sequence[Sequence[Term]]) -> List[schedules.Stage]:
    """Names and epoch limits for stages given as bare term lists (one epoch each)."""
    return [schedules.Stage(f"stage {k + 1}", (), any(t.uses_teacher and terms_lib.LOGITS
                                                      in t.needs for t in stage),
                            all(not t.uses_teacher for t in stage), 1)
            for k, stage in enumerate(stages)]


class Distiller(keras.Model):
    """Distils ``teacher`` into ``student`` stage by stage.

    Args:
        student: the model being trained.
        teacher: the frozen teacher, or None when every stage is plain fine-tuning.
        stages: per stage, its terms (stage_terms).
        evaluation_terms: what test_step reports (every term of every pair, say); the
            last stage's terms when None.
        freeze_lower_layers: a stage with layer pairs trains only the student layers from
            its lowest pair up (and their projections): the embeddings and the layers
            below stay as they are, and so does the classifier unless a term reads the
            logits.  PID as the paper describes it: one layer optimised at a time.
        schedule: per stage, its schedules.Stage (name, epoch limit, whether it trains
            the classifier); one-epoch stages named "stage k" when None.
        mapping: [(student layer, teacher layer)], 1-based: the pairs the attention
            pictures show.
    """

    def __init__(self, student: EncoderClassifier, teacher: Optional[EncoderClassifier],
                 stages: Sequence[Sequence[Term]],
                 evaluation_terms: Optional[Sequence[Term]] = None,
                 freeze_lower_layers: bool = False,
                 schedule: Optional[Sequence[schedules.Stage]] = None,
                 mapping: Sequence[Tuple[int, int]] = (), **kwargs):
        super().__init__(**kwargs)
        self.freeze_lower_layers = freeze_lower_layers
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        elif any(term.uses_teacher for stage in stages for term in stage):
            raise ValueError("Only the finetune schedule runs without a teacher.")
        self.stages = [list(stage) for stage in stages]
        self.schedule = list(schedule) if schedule is not None else _default_schedule(stages)
        if len(self.schedule) != len(self.stages):
            raise ValueError("schedule and stages must have one entry per stage.")
        self.mapping = [tuple(pair) for pair in mapping]
        self.evaluation_terms = list(evaluation_terms or self.stages[-1])
        every = self.stages + [self.evaluation_terms]
        if teacher is not None and any(terms_lib.ATTENTIONS in term.needs
                                       for stage in every for term in stage):
            if teacher.num_heads != student.num_heads:
                from kd_keras.hub import ModelError

                raise ModelError(
                    f"Attention distillation needs equal head counts: teacher has "
                    f"{teacher.num_heads}, student {student.num_heads}. Give the student "
                    f"{teacher.num_heads} heads or use --schedule=kd.")
        self.projections = {}
        if teacher is not None and teacher.hidden_size != student.hidden_size:
            # Student vectors to the teacher's width, one per student layer; trained, never
            # exported.  Built here: layers first built inside a step under a strategy fail.
            for layer in sorted({term.pair[0] for stage in every for term in stage
                                 if term.pair is not None}):
                projection = keras.layers.Dense(teacher.hidden_size, name=f"proj_s{layer}")
                projection.build((None, student.hidden_size))
                self.projections[layer] = projection
        counter = backends.current().COUNTER_DTYPE
        self.stage_index = keras.Variable(0, dtype=counter, trainable=False,
                                          name="stage_index")
        self.epochs_in_stage = keras.Variable(0, dtype=counter, trainable=False,
                                              name="epochs_in_stage")
        # The optimizer step at which the current stage began (StageWarmup reads it).
        self.stage_start = keras.Variable(0, dtype=counter, trainable=False,
                                          name="stage_start")
        self.active_stage = 0
        # Set by a callback when the run is over (last stage done, early stop, NaN).
        self.run_finished = False
        # The batch the current fit entered its epoch at (a resumed epoch starts mid-way).
        self.first_batch = 0
        # The callbacks' bookkeeping (stage history, best dev score); backups carry it.
        self._run_state: Dict = {}
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

    @property
    def stage(self) -> schedules.Stage:
        """The schedule stage the compiled step currently implements."""
        return self.schedule[self.active_stage]

    def trains_classifier(self, index: Optional[int] = None) -> bool:
        """Whether stage ``index`` (the current one when None) has a label term: only
        such epochs compete for the best student."""
        active = self.stages[self.active_stage if index is None else index]
        return any(terms_lib.LOGITS in term.needs for term in active)

    def set_stage(self, index: int, retrace: bool = True) -> None:
        """Moves to stage ``index`` from the current optimizer step.

        Args:
            index: the stage (len(stages) once the schedule is done).
            retrace: make the step follow now; False leaves that to the next
                sync_stage (StageController at an epoch's end, whose later callbacks
                still read the stage that epoch ran).
        """
        self.stage_index.assign(index)
        self.epochs_in_stage.assign(0)
        if getattr(self, "optimizer", None) is not None:
            # A Python int, not the counter's own buffer: JAX would donate one buffer
            # twice if two variables shared it.
            self.stage_start.assign(int(ops.convert_to_numpy(self.optimizer.iterations)))
        if retrace:
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

    def get_run_state(self) -> Dict:
        """The bookkeeping dict last stored with set_run_state ({} at first)."""
        return dict(self._run_state)

    def set_run_state(self, state: Dict) -> None:
        """Stores the callbacks' bookkeeping (JSON-able); TrainingBackup saves it."""
        self._run_state = dict(state)

    @property
    def trainable_student_variables(self) -> List:
        """Everything the optimizer may update: the student and the projections."""
        variables = list(self.student.trainable_variables)
        for projection in self.projections.values():
            variables += projection.trainable_variables
        return variables

    def backup_variables(self) -> List:
        """What a backup must hold to resume exactly: the student's variables (dropout
        seed-generator states included), the projections, the stage and the optimizer;
        not the frozen teacher."""
        variables = list(self.student.variables)
        for projection in self.projections.values():
            variables += projection.variables
        variables += [self.stage_index, self.epochs_in_stage, self.stage_start]
        if getattr(self, "optimizer", None) is not None:
            variables += list(self.optimizer.variables)
        unique, seen = [], set()
        for variable in variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                unique.append(variable)
        return unique

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

    def step_variables(self, active: Sequence[Term]) -> List:
        """What a train step updates: stage_variables, less what the step's loss does not
        depend on (layers above its deepest pair, of the deepest one all but query and
        key when only its attention is read, the classifier when no term reads logits,
        projections of terms without hidden states).  Both backends update exactly these:
        TensorFlow would find the rest without a gradient, JAX gives them zeros, which
        AdamW would still decay."""
        needs = self.requirements(active)
        read = list(self.student.embeddings.trainable_variables)
        deepest = needs.student_layers
        for number, layer in enumerate(self.student.encoder_layers[:deepest], start=1):
            if number < deepest or needs.student_logits or self._reads_output(active, number):
                read += layer.trainable_variables
            else:  # attention probabilities depend on the query and key projections only
                read += layer.attention.query.trainable_variables
                read += layer.attention.key.trainable_variables
        if needs.student_logits:
            read += self.student.head.trainable_variables
        for term in active:
            if term.pair and term.pair[0] in self.projections and (
                    terms_lib.CLS in term.needs or terms_lib.HIDDEN_STATES in term.needs):
                read += self.projections[term.pair[0]].trainable_variables
        read = {id(v) for v in read}
        return [v for v in self.stage_variables(active) if id(v) in read]

    @staticmethod
    def _reads_output(active: Sequence[Term], student_layer: int) -> bool:
        """Whether a term reads the output (hidden states or [CLS]) of a student layer."""
        return any(term.pair and term.pair[0] == student_layer
                   and (terms_lib.CLS in term.needs or terms_lib.HIDDEN_STATES in term.needs)
                   for term in active)

    def fit_schedule(self, epoch_data: Callable, steps_per_epoch: int,
                     callbacks: Sequence = (), validation_data=None, start_epoch: int = 0,
                     start_batch: int = 0, verbose=0) -> Dict[str, List[float]]:
        """Trains through the schedule, one ``fit`` per epoch, until a callback ends the
        run (callbacks.StageController after the last stage, early stopping, a NaN) or
        every stage has run to its epoch limit.

        Between two fits the step is retraced when the stage changed; a fit that enters
        its epoch mid-way (a resumed run) runs only the epoch's remaining batches.

        Args:
            epoch_data: (epoch, first batch) -> a dataset of that epoch's batches from
                the first one on (data.make_dataset with start_epoch / start_batch).
            steps_per_epoch: batches in a whole epoch.
            callbacks: Keras callbacks; a StageController is added when none is given.
            validation_data: dev dataset, evaluated after each epoch.
            start_epoch / start_batch: where training resumes.
            verbose: Keras' progress output.

        Returns:
            Metric name -> one value per epoch run.
        """
        callbacks = list(callbacks)
        if not any(isinstance(c, callbacks_lib.StageController) for c in callbacks):
            callbacks.insert(0, callbacks_lib.StageController(log=lambda line: None))
        callbacks.append(callbacks_lib.EndEpoch())
        epochs = schedules.max_epochs(self.schedule)
        self.run_finished = int(self.stage_index.numpy()) >= len(self.stages)
        history: Dict[str, List[float]] = {}
        epoch, batch = start_epoch, start_batch
        while epoch < epochs and not self.run_finished:
            self.sync_stage()  # before fit builds its step
            self.first_batch = batch
            fitted = self.fit(epoch_data(epoch, batch), epochs=epochs, initial_epoch=epoch,
                              steps_per_epoch=steps_per_epoch - batch,
                              validation_data=validation_data, callbacks=callbacks,
                              verbose=verbose, shuffle=False)
            for name, values in fitted.history.items():
                history.setdefault(name, []).extend(float(v) for v in values)
            epoch, batch = epoch + 1, 0
        return history

    def build_optimizer(self) -> None:
        """Creates the optimizer's slots for every trainable variable up front: stages
        update different subsets."""
        self.optimizer.build(self.trainable_student_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds unbuilt parts from a first batch, which under a strategy it
        # reduces across replicas; MultiWorkerMirroredStrategy cannot reduce a dict of
        # features ("unsupported type dict").  Every part here is built already (the
        # optimizer by build_optimizer), so there is nothing to build.
        return

    # ------------------------------------------------------------------ forward

    @property
    def metrics(self):
        # Ours only: Keras' own loss tracker would show 0, as train_step never feeds it.
        return list(self.trackers.values()) + ([self.accuracy] if self.accuracy else [])

    def call(self, inputs, training=False):
        """Student logits [batch, num_labels]."""
        return self.student(inputs, training=training)

    @property
    def reads_teacher_logits(self) -> bool:
        """Whether a stage trains against the teacher's logits (which can then be computed
        once, before training, and passed with the batches)."""
        return any(term.uses_teacher and terms_lib.LOGITS in term.needs
                   for stage in self.stages for term in stage)

    def requirements(self, active: Sequence[Term],
                     cached_teacher_logits: bool = False) -> terms_lib.Requirements:
        """How much of each model the active terms need."""
        return terms_lib.requirements(active, self.student.num_layers,
                                      self.teacher.num_layers if self.teacher else 0,
                                      cached_teacher_logits)

    def teacher_outputs(self, x: Dict, active: Sequence[Term],
                        teacher_logits=None) -> EncoderOutputs:
        """What the active terms read of the frozen teacher (training=False).

        Args:
            x: input_ids, attention_mask, token_type_ids int [batch, seq].
            active: the terms to compute.
            teacher_logits: the teacher's logits on this batch, float32 [batch, labels],
                computed before training; None runs the teacher for them.
        """
        needs = self.requirements(active, teacher_logits is not None)
        outputs = EncoderOutputs(None, [], [])
        if needs.teacher_layers is not None:
            outputs = self.teacher.forward(
                x, training=False, num_layers=needs.teacher_layers,
                with_logits=needs.teacher_logits, output_attentions=needs.attentions,
                cls_only_last=needs.teacher_cls_only)
        if outputs.logits is None and teacher_logits is not None:
            outputs.logits = teacher_logits
        return outputs

    def compute_terms(self, x: Dict, y, active: Sequence[Term], teacher: Optional[EncoderOutputs],
                      training: bool):
        """Per-example loss terms.

        Args:
            x: input_ids, attention_mask, token_type_ids int [batch, seq].
            y: labels [batch].
            active: the terms to compute.
            teacher: teacher_outputs(x, active).
            training: student dropout on.

        Returns:
            (total float32 [batch], term name -> float32 [batch], student logits or None).
        """
        needs = self.requirements(active)
        student = self.student.forward(
            x, training=training, num_layers=needs.student_layers,
            with_logits=needs.student_logits, output_attentions=needs.attentions,
            cls_only_last=needs.student_cls_only)
        batch = dict(x, labels=y)
        values, total = {}, 0.0
        # Under a mixed precision policy the models compute in float16 / bfloat16; every
        # loss is taken in float32 (the terms cast their inputs).
        for term in active:
            projection = self.projections.get(term.pair[0]) if term.pair else None
            values[term.name] = ops.cast(term(teacher, student, batch, projection), "float32")
            total = total + term.weight * values[term.name]
        logits = None if student.logits is None else ops.cast(student.logits, "float32")
        return total, values, logits

    def update_metrics(self, total, values, y, logits, weights=None) -> Dict:
        """Adds a batch to the running means and returns them.

        Args:
            total: float32 [batch]; values: term name -> float32 [batch].
            y: labels [batch]; logits: float32 [batch, labels] or None.
            weights: float [batch], 0 for filler rows, or None (all 1).
        """
        self.trackers["loss"].update_state(total, sample_weight=weights)
        for name, value in values.items():
            self.trackers[name].update_state(value, sample_weight=weights)
        results = {name: self.trackers[name].result() for name in ["loss", *values]}
        if self.accuracy is not None and logits is not None:
            self.accuracy.update_state(y, logits, sample_weight=weights)
            results["accuracy"] = self.accuracy.result()
        return results

    # The steps: (data) -> logs on TensorFlow, (state, data) -> (logs, state) on JAX.

    def train_step(self, *args):
        return backends.current().train_step(self, *args)

    def test_step(self, *args):
        return backends.current().test_step(self, *args)

    def predict_step(self, *args):
        return backends.current().predict_step(self, *args)


def for_schedule(student: EncoderClassifier, teacher: Optional[EncoderClassifier],
                 mapping: Sequence[Tuple[int, int]], schedule: Sequence[schedules.Stage],
                 internal: Sequence[str] = terms_lib.DEFAULT_LAYER_TERMS,
                 internal_weights: Optional[Dict[str, float]] = None,
                 hard_label_weight: float = 0.1, temperature: float = 1.0,
                 regression: bool = False, freeze_lower_layers: bool = False) -> Distiller:
    """A Distiller following a schedule (schedules.build_schedule).

    Args:
        student, teacher: the models (teacher None for fine-tuning).
        mapping: [(student layer, teacher layer)], 1-based.
        schedule: the stages.
        internal: per-pair term names (--internal_losses).
        internal_weights: term name -> weight (--attention_weight, --cosine_weight ...).
        hard_label_weight: lambda.
        temperature: soft-label temperature.
        regression: squared errors for the label terms.
        freeze_lower_layers: see Distiller.
    """
    options = dict(internal=internal, internal_weights=internal_weights,
                   hard_label_weight=hard_label_weight, temperature=temperature,
                   regression=regression)
    stages = [stage_terms(stage, mapping, **options) for stage in schedule]
    return Distiller(student, teacher, stages, evaluation_terms=evaluation_terms(mapping, teacher is not None, **options),
                     freeze_lower_layers=freeze_lower_layers, schedule=schedule,
                     mapping=mapping)
