"""Loss terms as objects: each has a name, a weight, says what it reads from the two
models, and computes one loss per example (keras.ops, any backend).

The paper's terms are the default: soft + lambda * hard labels, attention KL and the
squared [CLS] cosine per matched layer pair.  Hidden-state MSE, attention MSE and the
embedding-layer MSE make the TinyBERT / TextBrewer recipes a flag away.  ``REGISTRY``
names every term with its weight's flag; a stage (schedules.Stage) lists the terms it
turns on, and ``requirements`` tells the forward pass how little it may compute: the
layers up to the deepest pair, the heads only when logits are read, and the deepest
layer at [CLS] alone when no term reads its other positions.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Sequence, Tuple

from keras import ops

from kd_keras import losses

# What a term can read from a model's forward pass.
LOGITS, ATTENTIONS, CLS, HIDDEN_STATES = "logits", "attentions", "cls", "hidden_states"


@dataclasses.dataclass(frozen=True)
class Term:
    """One weighted loss term.

    Attributes:
        name: metric name, e.g. ``att_kl_s1_t2`` (TensorBoard shows it).
        weight: its factor in the total loss.
        pair: (student layer, teacher layer), 1-based, for layer terms; layer 0 is the
            embedding output; None for the label terms.
        needs: what the term reads: LOGITS, ATTENTIONS, CLS (the layer's output at the
            first position only) or HIDDEN_STATES (every position).
        uses_teacher: False for the hard-label term.
    """

    name: str
    weight: float = 1.0
    pair: Optional[Tuple[int, int]] = None
    needs: frozenset = frozenset()
    uses_teacher: bool = True

    def __call__(self, teacher, student, batch: Dict, projection: Optional[Callable] = None):
        """Per-example loss [batch] (unweighted).

        Args:
            teacher: the teacher's outputs (encoders.EncoderOutputs), or None for terms
                that do not use it; ``teacher.logits`` may be precomputed logits.
            student: the student's outputs.
            batch: the inputs (attention_mask int [batch, seq]) and ``labels`` [batch].
            projection: maps student vectors to the teacher's width (layer terms whose
                widths differ), or None.
        """
        raise NotImplementedError


def _project(vectors, projection):
    return vectors if projection is None else projection(vectors)


@dataclasses.dataclass(frozen=True)
class SoftLabel(Term):
    """Cross-entropy with the teacher's probabilities at a temperature (squared error to
    the teacher's score for regression)."""

    name: str = "soft"
    needs: frozenset = frozenset({LOGITS})
    temperature: float = dataclasses.field(kw_only=True)  # the run's --temperature
    regression: bool = False

    def __call__(self, teacher, student, batch, projection=None):
        if self.regression:
            return losses.regression_mse(teacher.logits, student.logits, reduction="none")
        return losses.soft_label_ce(teacher.logits, student.logits, self.temperature,
                                    reduction="none")


@dataclasses.dataclass(frozen=True)
class HardLabel(Term):
    """Cross-entropy with the gold labels (squared error to the gold score); 0 for an
    example without a label (batch["label_weights"] 0)."""

    name: str = "hard"
    needs: frozenset = frozenset({LOGITS})
    uses_teacher: bool = False
    regression: bool = False

    def __call__(self, teacher, student, batch, projection=None):
        if self.regression:
            loss = losses.regression_mse(batch["labels"], student.logits, reduction="none")
        else:
            loss = losses.hard_label_ce(batch["labels"], student.logits, reduction="none")
        if "label_weights" in batch:  # 0 for text without a label
            loss = loss * ops.cast(batch["label_weights"], loss.dtype)
        return loss


@dataclasses.dataclass(frozen=True)
class AttentionKL(Term):
    """KL(teacher || student) of a layer pair's attention distributions."""

    needs: frozenset = frozenset({ATTENTIONS})

    def __call__(self, teacher, student, batch, projection=None):
        s, t = self.pair
        return losses.attention_kl(teacher.attentions[t - 1], student.attentions[s - 1],
                                   batch["attention_mask"], reduction="none")


@dataclasses.dataclass(frozen=True)
class AttentionMSE(Term):
    """Squared difference of a layer pair's attention probabilities."""

    needs: frozenset = frozenset({ATTENTIONS})

    def __call__(self, teacher, student, batch, projection=None):
        s, t = self.pair
        return losses.attention_mse(teacher.attentions[t - 1], student.attentions[s - 1],
                                    batch["attention_mask"], reduction="none")


@dataclasses.dataclass(frozen=True)
class ClsCosine(Term):
    """Squared cosine distance of a layer pair's [CLS] vectors."""

    needs: frozenset = frozenset({CLS})

    def __call__(self, teacher, student, batch, projection=None):
        s, t = self.pair
        return losses.cls_cosine_loss(teacher.hidden_states[t][:, 0],
                                      _project(student.hidden_states[s][:, 0], projection),
                                      reduction="none")


@dataclasses.dataclass(frozen=True)
class HiddenMSE(Term):
    """Squared difference of a layer pair's hidden states at every valid token; with the
    pair (0, 0), of the embedding outputs."""

    needs: frozenset = frozenset({HIDDEN_STATES})

    def __call__(self, teacher, student, batch, projection=None):
        s, t = self.pair
        return losses.hidden_mse(teacher.hidden_states[t],
                                 _project(student.hidden_states[s], projection),
                                 batch["attention_mask"], reduction="none")


@dataclasses.dataclass(frozen=True)
class TermKind:
    """A loss term a run turns on by name.

    Attributes:
        term: the Term subclass.
        prefix: its metric name, or for a layer-pair term the name's start
            (``att_kl`` -> ``att_kl_s1_t2``).
        weight_flag: the config field (and command-line flag) holding its weight.
        reads: "labels" (the classifier's outputs), "pair" (one matched layer pair) or
            "embeddings" (the embedding layers of both models).
    """

    term: type
    prefix: str
    weight_flag: str
    reads: str


# Every term a run can turn on: the one table to extend with a new term.
REGISTRY = {
    "soft": TermKind(SoftLabel, "soft", "soft_label_weight", "labels"),
    "hard": TermKind(HardLabel, "hard", "hard_label_weight", "labels"),
    "attention_kl": TermKind(AttentionKL, "att_kl", "attention_weight", "pair"),
    "cls_cosine": TermKind(ClsCosine, "cos", "cosine_weight", "pair"),
    "hidden_mse": TermKind(HiddenMSE, "hid_mse", "hidden_mse_weight", "pair"),
    "attention_mse": TermKind(AttentionMSE, "att_mse", "attention_mse_weight", "pair"),
    "embedding_mse": TermKind(HiddenMSE, "emb_mse", "embedding_mse_weight", "embeddings"),
}
# The names --internal_losses takes: every term that reads layers rather than labels.
INTERNAL_TERMS = tuple(name for name, kind in REGISTRY.items() if kind.reads != "labels")


def make(name: str, weight: float, pair: Optional[Tuple[int, int]] = None,
         **options) -> Term:
    """A registered term.

    Args:
        name: a REGISTRY key.
        weight: its factor in the total loss.
        pair: (student layer, teacher layer), 1-based, for layer-pair terms.
        **options: the term's own settings (temperature, regression).

    Raises:
        ValueError: an unknown name (the message lists the known ones), or a layer-pair
            term without its pair.
    """
    kind = kind_of(name)
    if kind.reads == "pair" and pair is None:
        raise ValueError(f"The {name} term needs a layer pair.")
    if kind.reads == "embeddings":
        pair = (0, 0)
    return kind.term(name=term_name(name, pair), weight=weight,
                     pair=None if kind.reads == "labels" else tuple(pair), **options)


def kind_of(name: str) -> TermKind:
    """The registered term of this name.

    Raises:
        ValueError: an unknown name; the message lists the known ones.
    """
    if name not in REGISTRY:
        raise ValueError(f"Unknown loss term '{name}'. Choose from: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def term_name(name: str, pair: Optional[Tuple[int, int]] = None) -> str:
    """The metric name of a registered term: its prefix, with the layer pair for
    layer-pair terms (``att_kl_s1_t2``)."""
    kind = kind_of(name)
    return f"{kind.prefix}_s{pair[0]}_t{pair[1]}" if kind.reads == "pair" else kind.prefix


@dataclasses.dataclass(frozen=True)
class Requirements:
    """How much of each model one set of terms needs.

    Attributes:
        student_layers: student layers to run (its depth when logits are read).
        student_logits: run the student's classifier head.
        teacher_layers: teacher layers to run; None when the teacher need not run at all
            (no teacher term, or only label terms with cached logits).
        teacher_logits: run the teacher's classifier head.
        student_cls_only / teacher_cls_only: the deepest layer run may compute its
            output at [CLS] alone (no term reads its other positions).
        attentions: some term reads attention probabilities.
    """

    student_layers: int
    student_logits: bool
    teacher_layers: Optional[int]
    teacher_logits: bool
    student_cls_only: bool
    teacher_cls_only: bool
    attentions: bool


def requirements(terms: Sequence[Term], student_num_layers: int, teacher_num_layers: int,
                 cached_teacher_logits: bool = False) -> Requirements:
    """What the forward passes must compute for these terms.

    Args:
        terms: the active terms.
        student_num_layers / teacher_num_layers: the models' depths.
        cached_teacher_logits: the teacher's logits come with the batch, so label terms
            need no teacher pass.
    """
    pair_terms = [term for term in terms if term.pair is not None]
    student_logits = any(LOGITS in term.needs for term in terms)
    teacher_logits = not cached_teacher_logits and any(
        LOGITS in term.needs and term.uses_teacher for term in terms)
    student_layers = (student_num_layers if student_logits
                      else max((term.pair[0] for term in pair_terms), default=0))
    teacher_layers = (teacher_num_layers if teacher_logits
                      else max((term.pair[1] for term in pair_terms), default=None))

    def cls_only(side: int, depth: Optional[int]) -> bool:
        return bool(depth) and not any(HIDDEN_STATES in term.needs and term.pair[side] == depth
                                       for term in pair_terms)

    return Requirements(student_layers, student_logits, teacher_layers, teacher_logits,
                        cls_only(0, student_layers), cls_only(1, teacher_layers),
                        any(ATTENTIONS in term.needs for term in terms))
