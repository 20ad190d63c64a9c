"""Frozen run configuration, validated once and saved as JSON in model_dir."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Optional, Tuple

from kd_keras import schedules
from kd_keras.tasks import OWN_DATA_TASK, TASK_TYPES, get_task

MODES = ("pipeline", "train_teacher", "distill", "evaluate", "predict", "export")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
TINY_TEACHER = "tiny"
MINILM_TEACHER = "minilm"  # the same name models.MINILM loads
DEMO_MODEL_DIR = "/tmp/kd_keras_demo"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where examples come from and how they are batched."""

    task: str = "synthetic"
    data_dir: Optional[str] = None
    use_tfds: bool = True
    tfds_data_dir: Optional[str] = None
    max_seq_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    skip_bad_rows: bool = False
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = None
    synthetic_size: int = 2000
    # The user's own data (task "custom"): CSV / TSV with a header row, or JSONL.
    train_file: Optional[str] = None
    dev_file: Optional[str] = None
    text_fields: Tuple[str, ...] = ()
    label_field: Optional[str] = None
    task_type: str = "classification"

    @property
    def own_data(self) -> bool:
        """True when the examples come from the user's own files."""
        return self.train_file is not None


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

    # None: default_model_dir(), one folder per task and schedule.
    model_dir: Optional[str] = None
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


def default_model_dir(data: DataConfig, schedule: str) -> str:
    """The output folder of a run that names none: one per data and schedule, so runs
    of different tasks or schedules never share a folder.

    The demo (synthetic task, sid) keeps /tmp/kd_keras_demo; other runs go to
    ``runs/<task>_<schedule>`` under the working directory, own data to
    ``runs/<folder>-<train file name>_<schedule>``.
    """
    if data.own_data:
        path = os.path.abspath(data.train_file)
        name = (f"{os.path.basename(os.path.dirname(path))}-"
                f"{os.path.splitext(os.path.basename(path))[0]}")
        return os.path.abspath(os.path.join("runs", f"{name}_{schedule}"))
    if data.task == "synthetic":
        return DEMO_MODEL_DIR if schedule == "sid" else f"{DEMO_MODEL_DIR}_{schedule}"
    return os.path.abspath(os.path.join("runs", f"{get_task(data.task).name}_{schedule}"))


def validate(config: RunConfig) -> RunConfig:
    """Checks a configuration before any work starts.

    Raises:
        ValueError: a setting is out of range or unknown; the message names the flag.
    """
    if config.mode not in MODES:
        raise ValueError(f"Unknown mode '{config.mode}'. Choose one of: {', '.join(MODES)}.")
    if config.data.own_data:
        _validate_own_data(config.data)
    else:
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
    if not config.train.model_dir:
        raise ValueError("--model_dir is empty; name a folder or leave it unset.")
    return config


def _validate_own_data(data: DataConfig) -> None:
    if data.task != OWN_DATA_TASK:
        raise ValueError("Pass either --task (a GLUE task) or --train_file (your own data), "
                         "not both.")
    if not data.dev_file:
        raise ValueError("--train_file needs --dev_file: a file in the same format that the "
                         "student is evaluated and selected on.")
    if len(data.text_fields) not in (1, 2):
        raise ValueError("--train_file needs --text_fields: the field holding the text, or "
                         "two comma-separated fields for pairs (e.g. --text_fields=q1,q2).")
    if not data.label_field:
        raise ValueError("--train_file needs --label_field: the field holding the label.")
    if data.task_type not in TASK_TYPES:
        raise ValueError(f"Unknown --task_type '{data.task_type}'. Choose one of: "
                         f"{', '.join(TASK_TYPES)}.")


def from_json(text: str) -> RunConfig:
    """A RunConfig from config.json text; fields it does not name keep their defaults (a
    folder written by an older version), and fields no longer known are ignored."""
    stored = json.loads(text)

    def build(cls, values):
        kwargs = {}
        for field in dataclasses.fields(cls):
            if field.name in values:
                value = values[field.name]
                kwargs[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    return RunConfig(mode=stored.get("mode", RunConfig.mode),
                     data=build(DataConfig, stored.get("data", {})),
                     model=build(ModelConfig, stored.get("model", {})),
                     distill=build(DistillConfig, stored.get("distill", {})),
                     train=build(TrainConfig, stored.get("train", {})))


def save(config: RunConfig, model_dir: str) -> str:
    """Writes config.json into model_dir atomically and returns its path."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "config.json")
    fd, tmp = tempfile.mkstemp(dir=model_dir, suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write(config.to_json())
    os.replace(tmp, path)
    return path
