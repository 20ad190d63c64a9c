"""Layer schedules as data: which losses are on in each stage.

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
from typing import List, Tuple

SCHEDULES = ("all", "pid", "sid", "kd", "finetune")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a schedule.

    Attributes:
        name: shown in logs (``"sid 2/4: layers 1-2"``).
        pairs: 0-based indices into the layer mapping whose attention KL and [CLS]
            cosine losses are on.
        kd: the soft-label (+ lambda * hard-label) loss is on, so the classifier trains.
        hard_only: gold labels alone (fine-tuning, no teacher).
        max_epochs: the stage ends after this many epochs at the latest.
    """

    name: str
    pairs: Tuple[int, ...]
    kd: bool
    hard_only: bool
    max_epochs: int

    @property
    def internal(self) -> bool:
        """True when internal (attention / hidden-state) losses are on."""
        return bool(self.pairs)

    @property
    def uses_teacher(self) -> bool:
        return not self.hard_only


def build_schedule(name: str, num_pairs: int, epochs: int, epochs_per_stage: int,
                   kd_every_stage: bool = False) -> List[Stage]:
    """The stages of a schedule.

    Args:
        name: one of SCHEDULES.
        num_pairs: matched layer pairs (the student's depth).
        epochs: epochs of single-stage schedules and of the final KD stage of pid / sid.
        epochs_per_stage: epoch limit of each internal stage of pid / sid.
        kd_every_stage: add the KD loss to the internal stages of pid / sid.

    Returns:
        The stages, in order.

    Raises:
        ValueError: unknown schedule name or non-positive epochs.
    """
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule '{name}'. Choose one of: {', '.join(SCHEDULES)}.")
    if epochs < 1 or epochs_per_stage < 1:
        raise ValueError("--epochs and --epochs_per_stage must be at least 1.")
    every_pair = tuple(range(num_pairs))
    if name == "all":
        return [Stage("all: every layer + kd", every_pair, True, False, epochs)]
    if name == "kd":
        return [Stage("kd: soft + hard labels", (), True, False, epochs)]
    if name == "finetune":
        return [Stage("finetune: hard labels", (), False, True, epochs)]
    total = num_pairs + 1
    stages = []
    for k in range(num_pairs):
        if name == "pid":
            pairs, label = (k,), f"layer {k + 1}"
        else:
            pairs, label = tuple(range(k + 1)), ("layer 1" if k == 0 else f"layers 1-{k + 1}")
        stages.append(Stage(f"{name} {k + 1}/{total}: {label}" + (" + kd" if kd_every_stage else ""),
                            pairs, kd_every_stage, False, epochs_per_stage))
    stages.append(Stage(f"{name} {total}/{total}: classifier (kd)", (), True, False, epochs))
    return stages


def max_epochs(stages: List[Stage]) -> int:
    """Upper bound on a schedule's epochs (every stage running to its limit)."""
    return sum(stage.max_epochs for stage in stages)
