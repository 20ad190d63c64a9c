"""Schedules as data: a run's stages, each naming its terms, what it trains and how it
ends, built from the method (config.DistillConfig) and the layer mapping.

- ``all``: every matched layer pair plus the KD loss, in one stage.
- ``pid`` (progressive): stage k trains layer pair k alone, bottom-up; a last stage
  trains the classifier with the KD loss.
- ``sid`` (stacked): stage k trains layer pairs 1..k together; a last KD stage.
- ``kd``: standard knowledge distillation (soft + lambda * hard), no internal losses.
- ``finetune``: the student on gold labels alone, no teacher.

With ``kd_every_stage`` the KD loss is also on in the internal stages of pid and sid (the
paper's best setting); without it the classifier is not updated until the last stage.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

from kd_keras import terms as terms_lib
from kd_keras.config import SCHEDULES, DistillConfig
from kd_keras.terms import Term

Pair = Tuple[int, int]


@dataclasses.dataclass(frozen=True)
class EarlyEnd:
    """A stage also ends after an epoch whose mean of these train metrics falls below
    ``threshold`` (--cos_threshold on the stage's [CLS] cosine terms); ``description``
    names them in the log."""

    metrics: Tuple[str, ...]
    threshold: float
    description: str = "cosine loss"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a schedule.

    Attributes:
        name: shown in logs (``"sid 2/4: layers 1-2"``).
        terms: the loss terms it turns on.
        max_epochs: it ends after this many epochs at the latest.
        frozen_below: student layers numbered below this keep their weights (the
            embeddings are layer 0; --freeze_lower_layers sets it to the stage's lowest
            pair); 0 freezes nothing.
        early_end: an earlier end on a metric, or None.
    """

    name: str
    terms: Tuple[Term, ...]
    max_epochs: int
    frozen_below: int = 0
    early_end: Optional[EarlyEnd] = None

    @property
    def trains_classifier(self) -> bool:
        """A term reads the logits: the stage's epochs compete for the best student."""
        return any(terms_lib.LOGITS in term.needs for term in self.terms)

    @property
    def uses_teacher(self) -> bool:
        return any(term.uses_teacher for term in self.terms)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A run's stages, what validation reports, and the layer pairs.

    Attributes:
        stages: in order.
        evaluation: the terms test_step reports every epoch (with a teacher every term of
            every pair, so dev curves show each layer in every stage).
        mapping: [(student layer, teacher layer)], 1-based.
    """

    stages: Tuple[Stage, ...]
    evaluation: Tuple[Term, ...]
    mapping: Tuple[Pair, ...] = ()

    @property
    def max_epochs(self) -> int:
        """Upper bound on the run's epochs (every stage running to its limit)."""
        return sum(stage.max_epochs for stage in self.stages)


def build(method: DistillConfig, mapping: Sequence[Pair], regression: bool = False
          ) -> Schedule:
    """The stages of ``method.schedule``, their terms weighted as the method says.

    Args:
        method: schedule, epochs, loss weights, temperature, internal terms, freezing.
        mapping: [(student layer, teacher layer)], 1-based, one pair per student layer.
        regression: squared errors instead of cross-entropies for the label terms.

    Raises:
        ValueError: an unknown schedule or term (config.validate checks the names first),
            or epochs below 1.
    """
    if method.schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule '{method.schedule}'. Choose one of: "
                         f"{', '.join(SCHEDULES)}.")
    if method.epochs < 1 or method.epochs_per_stage < 1:
        raise ValueError("--epochs and --epochs_per_stage must be at least 1.")
    if method.schedule == "finetune":
        return finetune(method.epochs, regression)
    mapping = tuple(tuple(pair) for pair in mapping)
    builder = _Builder(method, mapping, regression)
    every_pair = tuple(range(len(mapping)))
    if method.schedule == "all":
        stages = [builder.stage("all: every layer + kd", every_pair, True, method.epochs)]
    elif method.schedule == "kd":
        stages = [builder.stage("kd: soft + hard labels", (), True, method.epochs)]
    else:
        total = len(mapping) + 1
        stages = []
        for k in range(len(mapping)):
            if method.schedule == "pid":
                pairs, label = (k,), f"layer {k + 1}"
            else:
                pairs, label = tuple(range(k + 1)), ("layer 1" if k == 0
                                                     else f"layers 1-{k + 1}")
            name = (f"{method.schedule} {k + 1}/{total}: {label}"
                    + (" + kd" if method.kd_every_stage else ""))
            stages.append(builder.stage(name, pairs, method.kd_every_stage,
                                        method.epochs_per_stage))
        stages.append(builder.stage(f"{method.schedule} {total}/{total}: classifier (kd)",
                                    (), True, method.epochs))
    evaluation = builder.label_terms() + builder.pair_terms(every_pair)
    return Schedule(tuple(stages), tuple(evaluation), mapping)


def finetune(epochs: int, regression: bool = False) -> Schedule:
    """One stage of gold labels alone, no teacher: the teacher's fine-tuning, and the
    student baseline (--schedule=finetune)."""
    hard = (terms_lib.make("hard", 1.0, regression=regression),)
    return Schedule((Stage("finetune: hard labels", hard, epochs),), hard)


def from_terms(stages: Sequence[Sequence[Term]], mapping: Sequence[Pair] = ()) -> Schedule:
    """A schedule of hand-picked terms: one epoch a stage, named "stage k"; validation
    reports the last stage's terms."""
    built = tuple(Stage(f"stage {k + 1}", tuple(terms), 1) for k, terms in enumerate(stages))
    return Schedule(built, built[-1].terms, tuple(tuple(pair) for pair in mapping))


class _Builder:
    """Terms of one method over one mapping."""

    def __init__(self, method: DistillConfig, mapping: Tuple[Pair, ...], regression: bool):
        self.method, self.mapping, self.regression = method, mapping, regression

    def weight(self, name: str) -> float:
        return getattr(self.method, terms_lib.kind_of(name).weight_flag)

    def label_terms(self) -> List[Term]:
        """Soft labels at the method's temperature + lambda * hard labels."""
        return [terms_lib.make("soft", self.weight("soft"), regression=self.regression,
                               temperature=self.method.temperature),
                terms_lib.make("hard", self.weight("hard"), regression=self.regression)]

    def pair_terms(self, pairs: Sequence[int]) -> List[Term]:
        """The internal terms of mapping[pairs]; the embedding term when the first pair
        is among them (each sid stage, pid's first, all)."""
        names = self.method.internal_losses
        found = []
        if 0 in pairs and "embedding_mse" in names:
            found.append(terms_lib.make("embedding_mse", self.weight("embedding_mse")))
        for index in pairs:
            found += [terms_lib.make(name, self.weight(name), self.mapping[index])
                      for name in names if terms_lib.kind_of(name).reads == "pair"]
        return found

    def stage(self, name: str, pairs: Tuple[int, ...], with_labels: bool,
              max_epochs: int) -> Stage:
        active = (self.label_terms() if with_labels else []) + self.pair_terms(pairs)
        frozen_below = 0
        if self.method.freeze_lower_layers and pairs:
            frozen_below = min(term.pair[0] for term in active if term.pair is not None)
        cosines = (tuple(terms_lib.term_name("cls_cosine", self.mapping[index])
                         for index in pairs)
                   if "cls_cosine" in self.method.internal_losses else ())
        early_end = (EarlyEnd(cosines, self.method.cos_threshold)
                     if cosines and self.method.cos_threshold > 0 else None)
        return Stage(name, tuple(active), max_epochs, frozen_below, early_end)
