"""The optimizer of every kd_keras fit: AdamW with gradient clipping, no weight decay on
LayerNorm weights and biases, and a linear warm-up and decay that may restart at each
stage (--stage_warmup)."""

from __future__ import annotations

import keras
from keras import ops


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
