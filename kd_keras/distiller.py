"""The Distiller: a Keras 3 model whose train step runs the frozen teacher and the student
(kd_keras.encoders) and sums the loss terms (kd_keras.terms) of the current stage.

    loss = sum over the stage's terms of weight * term
         = soft + lambda * hard (when the stage trains the classifier)
           + per matched layer pair (s, t): attention KL(t || s) + [CLS] cosine distance
             (the paper's terms; others by name, terms.REGISTRY)

The stages come as data (schedules.Schedule): each names its terms, its epoch limit,
what it freezes and how it may end early.  ``terms.requirements`` decides how much of
each model a step runs (student layers up to the deepest active pair, the teacher up to
its match, the heads only when logits are read).  The stage lives in variables
(``stage_index``, ``epochs_in_stage``, ``stage_start``), so backups carry it, and the
step is retraced when the stage changes (``sync_stage``).

The loss of a step is defined here once (``teacher_outputs``, ``compute_terms``, what a
step updates in ``step_variables``, ``update_metrics``); ``kd_keras.backends`` runs it
on TensorFlow (a GradientTape) or JAX (a stateless jitted step).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import keras
from keras import ops

from kd_keras import backends, callbacks as callbacks_lib, terms as terms_lib
from kd_keras.data.batching import Batch
from kd_keras.encoders import EncoderClassifier, EncoderOutputs
from kd_keras.errors import ModelError
from kd_keras.schedules import Schedule, Stage
from kd_keras.terms import Term


class Distiller(keras.Model):
    """Distils ``teacher`` into ``student`` stage by stage.

    Args:
        student: the model being trained.
        teacher: the frozen teacher, or None when every term reads gold labels alone.
        schedule: the stages (schedules.build), what validation reports, the layer pairs.

    Raises:
        ValueError: a term that needs the teacher, without one.
        ModelError: attention terms over models of different head counts.
    """

    def __init__(self, student: EncoderClassifier, teacher: Optional[EncoderClassifier],
                 schedule: Schedule, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.schedule = schedule
        self.stages = schedule.stages
        self.evaluation_terms = list(schedule.evaluation)
        self.mapping = list(schedule.mapping)
        every = [term for stage in self.stages for term in stage.terms] + self.evaluation_terms
        if teacher is not None:
            teacher.trainable = False
        elif any(term.uses_teacher for term in every):
            raise ValueError("Only the finetune schedule runs without a teacher.")
        if (teacher is not None and teacher.num_heads != student.num_heads
                and any(terms_lib.ATTENTIONS in term.needs for term in every)):
            raise ModelError(
                f"Attention distillation needs equal head counts: teacher has "
                f"{teacher.num_heads}, student {student.num_heads}. Give the student "
                f"{teacher.num_heads} heads or use --schedule=kd.")
        self.projections = {}
        if teacher is not None and teacher.hidden_size != student.hidden_size:
            # Student vectors to the teacher's width, one per student layer; trained, never
            # exported.  Built here: layers first built inside a step under a strategy fail.
            for layer in sorted({term.pair[0] for term in every if term.pair is not None}):
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
        names = ["loss"] + sorted({term.name for term in every})
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.accuracy = (keras.metrics.SparseCategoricalAccuracy(name="accuracy")
                         if student.num_labels > 1 else None)
        self.built = True  # every part is built already

    # ------------------------------------------------------------------ stages

    @property
    def stage(self) -> Stage:
        """The stage the compiled step currently implements."""
        return self.stages[self.active_stage]

    @property
    def terms(self) -> List[Term]:
        """The terms the compiled step currently computes."""
        return list(self.stage.terms)

    @property
    def reads_teacher_logits(self) -> bool:
        """Whether a stage trains against the teacher's logits (which can then be computed
        once, before training, and passed with the batches)."""
        return any(term.uses_teacher and terms_lib.LOGITS in term.needs
                   for stage in self.stages for term in stage.terms)

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

    # ------------------------------------------------------------------ variables

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

    def stage_variables(self, stage: Stage) -> List:
        """What a stage may update: everything but the student layers below its
        ``frozen_below`` (the embeddings are layer 0) and their projections."""
        if not stage.frozen_below:
            return self.trainable_student_variables
        lowest = stage.frozen_below
        variables = []
        for number, layer in enumerate(self.student.encoder_layers, start=1):
            if number >= lowest:
                variables += layer.trainable_variables
        variables += self.student.head.trainable_variables
        for number, projection in self.projections.items():
            if number >= lowest:
                variables += projection.trainable_variables
        return variables

    def step_variables(self, stage: Stage) -> List:
        """What a train step of ``stage`` updates: stage_variables, less what its loss
        does not depend on (layers above its deepest pair, of the deepest one all but
        query and key when only its attention is read, the classifier when no term reads
        logits, projections of terms without hidden states).  Both backends update
        exactly these: TensorFlow would find the rest without a gradient, JAX gives them
        zeros, which AdamW would still decay."""
        active = stage.terms
        needs = self.requirements(active)
        read = list(self.student.embeddings.trainable_variables)
        deepest = needs.student_layers
        for number, layer in enumerate(self.student.encoder_layers[:deepest], start=1):
            if number < deepest or needs.student_logits or _reads_output(active, number):
                read += layer.trainable_variables
            else:  # attention probabilities depend on the query and key projections only
                read += layer.attention.query.trainable_variables
                read += layer.attention.key.trainable_variables
        if needs.student_logits:
            read += self.student.head.trainable_variables
        for term in active:
            if term.pair and term.pair[0] in self.projections and _reads_output([term],
                                                                                term.pair[0]):
                read += self.projections[term.pair[0]].trainable_variables
        read = {id(v) for v in read}
        return [v for v in self.stage_variables(stage) if id(v) in read]

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

    # ------------------------------------------------------------------ training

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
                the first one on (backends.make_dataset with start_epoch / start_batch).
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
        epochs = self.schedule.max_epochs
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

    # ------------------------------------------------------------------ the loss

    @property
    def metrics(self):
        # Ours only: Keras' own loss tracker would show 0, as train_step never feeds it.
        return list(self.trackers.values()) + ([self.accuracy] if self.accuracy else [])

    def call(self, inputs, training=False):
        """Student logits [batch, num_labels]."""
        return self.student(inputs, training=training)

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

    def compute_terms(self, x: Dict, y, active: Sequence[Term],
                      teacher: Optional[EncoderOutputs], training: bool,
                      label_weights=None):
        """Per-example loss terms.

        Args:
            x: input_ids, attention_mask, token_type_ids int [batch, seq].
            y: labels [batch].
            active: the terms to compute.
            teacher: teacher_outputs(x, active).
            training: student dropout on.
            label_weights: float [batch], 0 where an example has no label (the gold-label
                term skips it), or None.

        Returns:
            (total float32 [batch], term name -> float32 [batch], student logits or None).
        """
        needs = self.requirements(active)
        student = self.student.forward(
            x, training=training, num_layers=needs.student_layers,
            with_logits=needs.student_logits, output_attentions=needs.attentions,
            cls_only_last=needs.student_cls_only)
        batch = dict(x, labels=y)
        if label_weights is not None:
            batch["label_weights"] = label_weights
        values, total = {}, 0.0
        # Under a mixed precision policy the models compute in float16 / bfloat16; every
        # loss is taken in float32 (the terms cast their inputs).
        for term in active:
            projection = self.projections.get(term.pair[0]) if term.pair else None
            values[term.name] = ops.cast(term(teacher, student, batch, projection), "float32")
            total = total + term.weight * values[term.name]
        logits = None if student.logits is None else ops.cast(student.logits, "float32")
        return total, values, logits

    def update_metrics(self, total, values, batch: Batch, logits, stage=None) -> Dict:
        """Adds a batch to the running means and returns the step's logs.

        Args:
            total: float32 [batch]; values: term name -> float32 [batch].
            batch: the batch (its labels, example weights and label weights).
            logits: the student's, float32 [batch, labels], or None.
            stage: the stage_index a train step ran (its value in the step's state), or
                None; logged 1-based as "stage".
        """
        weights = batch.weights
        self.trackers["loss"].update_state(total, sample_weight=weights)
        for name, value in values.items():
            self.trackers[name].update_state(value, sample_weight=weights)
        results = {name: self.trackers[name].result() for name in ["loss", *values]}
        if self.accuracy is not None and logits is not None:
            labelled = batch.label_weights
            if labelled is not None:  # accuracy counts the examples that have a label
                labelled = labelled if weights is None else labelled * weights
            self.accuracy.update_state(batch.labels, logits,
                                       sample_weight=weights if labelled is None else labelled)
            results["accuracy"] = self.accuracy.result()
        if stage is not None:
            results["stage"] = ops.cast(stage, "float32") + 1.0
        return results

    # The steps: (data) -> logs on TensorFlow, (state, data) -> (logs, state) on JAX.

    def train_step(self, *args):
        return backends.current().train_step(self, *args)

    def test_step(self, *args):
        return backends.current().test_step(self, *args)

    def predict_step(self, *args):
        return backends.current().predict_step(self, *args)


def _reads_output(active: Sequence[Term], student_layer: int) -> bool:
    """Whether a term reads the output (hidden states or [CLS]) of a student layer."""
    return any(term.pair and term.pair[0] == student_layer
               and (terms_lib.CLS in term.needs or terms_lib.HIDDEN_STATES in term.needs)
               for term in active)
