"""Frozen run configuration, validated once and saved as JSON in model_dir."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Optional, Tuple

from kd_keras import schedules
from kd_keras.tasks import get_task

MODES = ("pipeline", "train_teacher", "distill", "evaluate", "predict", "export")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
TINY_TEACHER = "tiny"
MINILM_TEACHER = "minilm"  # the same name models.MINILM loads


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where examples come from and how they are batched."""

    task: str = "synthetic"
    data_dir: Optional[str] = None
    use_tfds: bool = False
    tfds_data_dir: Optional[str] = None
    max_seq_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    skip_bad_rows: bool = False
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = None
    synthetic_size: int = 2000


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Teacher source and student shape.

    ``teacher`` is ``tiny`` (a small BERT built from scratch on the task's vocab, for the
    demo), ``minilm`` (the packaged MiniLM), a local Hugging Face folder or a hub name.
    """

    teacher: str = TINY_TEACHER
    teacher_finetuned: bool = False
    tiny_layers: int = 4
    tiny_hidden_size: int = 64
    tiny_heads: int = 4
    student: Optional[str] = None
    student_layers: int = 2
    student_hidden_size: Optional[int] = None
    student_init: str = "teacher"
    layer_map: Optional[Tuple[int, ...]] = None


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """The method: schedule and loss weights."""

    schedule: str = "sid"
    epochs: int = 2
    epochs_per_stage: int = 2
    cos_threshold: float = 0.0
    kd_every_stage: bool = False
    cache_teacher_logits: bool = True
    hard_label_weight: float = 0.1
    temperature: float = 1.0
    attention_weight: float = 1.0
    cosine_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, hardware and outputs."""

    model_dir: str = "/tmp/kd_keras_demo"
    export_dir: Optional[str] = None
    learning_rate: float = 1e-4
    teacher_learning_rate: float = 1e-4
    teacher_epochs: int = 3
    warmup_proportion: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    distribution_strategy: str = "default"
    num_gpus: int = 0
    tpu: Optional[str] = None
    checkpoint_steps: int = 0
    early_stopping_patience: int = 0
    mixed_precision: str = "none"
    xla: bool = False
    # Tokenized features, unpacked models and teacher logits; model_dir/cache when None.
    cache_dir: Optional[str] = None
    # Set for multi-worker runs: every worker backs up to (and resumes from) the chief's
    # model_dir/backup, while non-chief workers write their other files elsewhere.
    backup_dir: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run needs."""

    mode: str = "pipeline"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    distill: DistillConfig = DistillConfig()
    train: TrainConfig = TrainConfig()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def validate(config: RunConfig) -> RunConfig:
    """Checks a configuration before any work starts.

    Raises:
        ValueError: a setting is out of range or unknown; the message names the flag.
    """
    if config.mode not in MODES:
        raise ValueError(f"Unknown mode '{config.mode}'. Choose one of: {', '.join(MODES)}.")
    get_task(config.data.task)
    if config.distill.schedule not in schedules.SCHEDULES:
        raise ValueError(f"Unknown schedule '{config.distill.schedule}'. Choose one of: "
                         f"{', '.join(schedules.SCHEDULES)}.")
    if config.train.distribution_strategy not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy '{config.train.distribution_strategy}'."
                         f" Choose one of: {', '.join(STRATEGIES)}.")
    if config.train.mixed_precision not in PRECISIONS:
        raise ValueError(f"Unknown --mixed_precision '{config.train.mixed_precision}'. Choose "
                         f"one of: {', '.join(PRECISIONS)}.")
    positive = {
        "--max_seq_length": config.data.max_seq_length, "--batch_size": config.data.batch_size,
        "--eval_batch_size": config.data.eval_batch_size, "--epochs": config.distill.epochs,
        "--epochs_per_stage": config.distill.epochs_per_stage,
        "--student_layers": config.model.student_layers,
        "--learning_rate": config.train.learning_rate,
        "--temperature": config.distill.temperature,
    }
    for flag, value in positive.items():
        if value <= 0:
            raise ValueError(f"{flag} must be positive, got {value}.")
    if config.data.max_seq_length < 8:
        raise ValueError("--max_seq_length must be at least 8.")
    if not 0.0 <= config.train.warmup_proportion < 1.0:
        raise ValueError("--warmup_proportion must be in [0, 1).")
    if config.model.student_init not in ("teacher", "random"):
        raise ValueError("--student_init must be 'teacher' or 'random'.")
    return config


def save(config: RunConfig, model_dir: str) -> str:
    """Writes config.json into model_dir atomically and returns its path."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "config.json")
    fd, tmp = tempfile.mkstemp(dir=model_dir, suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write(config.to_json())
    os.replace(tmp, path)
    return path
