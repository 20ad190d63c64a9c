"""Frozen run configuration, validated once and saved as JSON in model_dir."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Tuple

from kd_keras import files, terms
from kd_keras.tasks import OWN_DATA_TASK, TASK_TYPES, get_task

MODES = ("pipeline", "train_teacher", "distill", "evaluate", "predict", "export")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
SCHEDULES = ("all", "pid", "sid", "kd", "finetune")  # schedules.build makes their stages
AUGMENT_METHODS = ("embedding", "mlm", "delete_swap")  # data.augment
AUGMENT_LABELS = ("none", "source")  # data.augment_labels
# kd_keras.export.WRITERS writes them.
EXPORT_FORMATS = ("saved_model", "litert", "litert_int8", "litert_full_int8", "onnx",
                  "onnx_int8", "hf")
TEXT_SIGNATURES = ("auto", "on", "off")
TINY_TEACHER = "tiny"
DEMO_MODEL_DIR = "/tmp/kd_keras_demo"


def option(default, help: str, choices: Optional[Tuple[str, ...]] = None):
    """A config field and its command-line flag (same name, this default and help).

    Args:
        default: the one default of the setting.
        help: the flag's help text.
        choices: allowed values of a string setting (an enum flag).
    """
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where examples come from and how they are batched."""

    task: str = option("synthetic", "GLUE task (cola, sst2, mrpc, qqp, stsb, mnli, qnli, "
                       "rte, wnli) or synthetic; not with --train_file.")
    data_dir: Optional[str] = option(None, "GLUE data folder holding <TASK>/train.tsv and "
                                     "dev.tsv; defaults to $GLUE_DIR.")
    use_tfds: bool = option(True, "Load TFDS glue/<task> when no data_dir is given.")
    tfds_data_dir: Optional[str] = option(None, "TFDS data folder (TFDS default when unset).")
    max_seq_length: int = option(128, "Longest input in tokens.")
    batch_size: int = option(32, "Global training batch size.")
    eval_batch_size: int = option(64, "Evaluation batch size.")
    speed_seconds: float = option(
        1.0, "Time each model's dev passes for at least this long (3 passes at least, "
        "alternating) to measure the student's speed-up; 0: 3 passes each.")
    skip_bad_rows: bool = option(False, "Skip malformed rows (and report how many) instead "
                                 "of failing.")
    max_train_examples: Optional[int] = option(None, "Use only the first N training "
                                               "examples.")
    max_eval_examples: Optional[int] = option(None, "Use only the first N dev examples.")
    synthetic_size: int = option(2000, "Training examples of the synthetic task.")
    train_file: Optional[str] = option(
        None, "Your own training data instead of --task: .csv or .tsv with a header row, or "
        ".jsonl (one object a line).")
    dev_file: Optional[str] = option(None, "Your own evaluation data, in the same fields "
                                     "(any of the three formats).")
    text_fields: Tuple[str, ...] = option(
        (), "With --train_file: the field holding the text, or two comma-separated fields "
        "for sentence pairs.")
    label_field: Optional[str] = option(None, "With --train_file: the label field.")
    task_type: str = option("classification", "With --train_file: classes read from the "
                            "training file (accuracy, macro F1) or a real-valued score "
                            "(Pearson, Spearman).", choices=TASK_TYPES)
    predict_file: Optional[str] = option(
        None, "predict mode: GLUE tasks: a TSV in the task's dev format; own data: a "
        ".csv/.tsv/.jsonl file with the text fields.")
    transfer_file: Optional[str] = option(
        None, "Text without labels to distil on as well (in-domain text beyond the labelled "
        "set): .csv / .tsv (header row) or .jsonl with the --transfer_fields.  The student "
        "learns the teacher's internal representations and soft labels on it; the gold-"
        "label term reads only labelled examples.")
    transfer_fields: Tuple[str, ...] = option(
        (), "The --transfer_file fields holding the text (two for pair tasks); default: "
        "--text_fields.")
    transfer_task: Optional[str] = option(
        None, "A GLUE task whose training sentences (labels dropped) are transfer text; "
        "from --data_dir or TFDS like the task's own.  The run's own task: its training "
        "examples beyond --max_train_examples.")
    max_transfer_examples: Optional[int] = option(None, "Use only the first N transfer "
                                                  "examples.")
    augment: int = option(0, "Write this many augmented copies of each training text "
                          "(unlabelled, distilled on like transfer text), once, into the "
                          "cache folder.")
    augment_method: str = option(
        "embedding", "embedding: words replaced by their nearest neighbours in the teacher's "
        "input-embedding space (offline, any checkpoint); mlm: by what --augment_model's "
        "masked-LM head predicts in their place (TinyBERT's); delete_swap: words deleted "
        "and swapped at random (a cheap baseline).", choices=AUGMENT_METHODS)
    augment_model: Optional[str] = option(
        None, "--augment_method=mlm: a pretrained checkpoint with a masked-LM head (a local "
        "folder or a hub name, e.g. bert-base-uncased); default: --teacher.")
    augment_labels: str = option(
        "none", "none: the augmented copies carry no label (the student learns the "
        "teacher's outputs on them); source: each copy carries its training example's "
        "label, so the hard-label term (and --schedule=finetune) learns from it too.",
        choices=AUGMENT_LABELS)
    output_file: Optional[str] = option(None, "predict mode: where predictions go (own data: "
                                        ".csv, .tsv or .jsonl, with the class probabilities).")

    @property
    def own_data(self) -> bool:
        """True when the examples come from the user's own files."""
        return self.train_file is not None

    @property
    def adds_text(self) -> bool:
        """True when the student also distils on text without labels."""
        return bool(self.transfer_file or self.transfer_task or self.augment)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Teacher source and student shape."""

    teacher: str = option(
        TINY_TEACHER, "tiny (built on the spot from random weights, its vocabulary from the "
        "training texts), minilm (pip package), a local Hugging Face folder or a hub name. "
        "Default: tiny for the synthetic task, minilm otherwise.")
    teacher_finetuned: bool = option(False, "The teacher is already fine-tuned on the task: "
                                     "skip fine-tuning.")
    tiny_layers: int = option(4, "Layers of the tiny teacher.")
    tiny_hidden_size: int = option(64, "Width of the tiny teacher.")
    tiny_heads: int = option(4, "Heads of the tiny teacher.")
    student: Optional[str] = option(
        None, "A pretrained student instead of one cut from the teacher: minilm, a local "
        "Hugging Face folder or a hub name. It must use the teacher's vocabulary; "
        "--student_layers and --student_init are then ignored.")
    student_layers: int = option(2, "Student depth.")
    student_hidden_size: Optional[int] = option(
        None, "Student width (teacher's when unset; another width needs "
        "--student_init=random).")
    student_init: str = option("teacher", "Copy embeddings and matched layers from the "
                               "teacher, or start random.", choices=("teacher", "random"))
    layer_map: Optional[Tuple[int, ...]] = option(
        None, "Teacher layer (1-based) for each student layer, e.g. 2,4,6; default "
        "k * L_t / L_s.")


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """The method: schedule and loss weights."""

    schedule: str = option("sid", "all, pid, sid, kd (standard KD baseline) or finetune "
                           "(student alone).")
    epochs: int = option(2, "Epochs of kd / all / finetune, and of the final classifier "
                         "stage of pid / sid.")
    epochs_per_stage: int = option(2, "Epoch limit of each internal pid / sid stage.")
    cos_threshold: float = option(0.0, "An internal stage also ends when its mean [CLS] "
                                  "cosine loss falls below this (0: never).")
    kd_every_stage: bool = option(False, "Add the soft-label loss to every pid / sid stage.")
    cache_teacher_logits: bool = option(
        True, "Run the frozen teacher over the training set once and reuse its logits, so "
        "stages that need only them (kd, classifier) run no teacher.")
    soft_label_weight: float = option(1.0, "Weight of the soft-label term (KD loss = "
                                      "soft_label_weight * soft + lambda * hard).")
    hard_label_weight: float = option(0.1, "lambda: KD loss = soft + lambda * hard.")
    temperature: float = option(1.0, "Soft-label temperature.")
    attention_weight: float = option(1.0, "Weight of attention KL terms.")
    cosine_weight: float = option(1.0, "Weight of [CLS] cosine terms.")
    hidden_mse_weight: float = option(1.0, "Weight of hidden-state MSE terms.")
    attention_mse_weight: float = option(1.0, "Weight of attention MSE terms.")
    embedding_mse_weight: float = option(1.0, "Weight of the embedding-layer MSE term.")
    internal_losses: Tuple[str, ...] = option(
        ("attention_kl", "cls_cosine"), "Per layer pair loss terms of the internal "
        "stages: attention_kl, cls_cosine (the paper's), hidden_mse (every token, "
        "projected when widths differ), attention_mse, and embedding_mse (the embedding "
        "layers, TinyBERT; in the stages that train the first pair).")
    freeze_lower_layers: bool = option(
        False, "A stage trains only the student layers from its lowest pair up (pid: one "
        "layer at a time, as the paper describes it); the embeddings and the layers below "
        "stay fixed.")
    stage_warmup: bool = option(False, "Restart the learning-rate warm-up at each stage.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, hardware and outputs."""

    model_dir: Optional[str] = option(
        None, "Output folder of one run: config, checkpoints, TensorBoard logs, models, "
        "results.json. Default: runs/<task>_<schedule> (the demo: /tmp/kd_keras_demo).")
    export_dir: Optional[str] = option(None, "Base folder of the exports (model_dir/export).")
    export_version: Optional[int] = option(None, "Version folder (next free number).")
    export_formats: Tuple[str, ...] = option(
        ("saved_model",), "Formats of the exported student, comma-separated: saved_model "
        "(TF Serving, <export_dir>/<version>), litert and onnx (float32), litert_int8 and "
        "onnx_int8 (int8 weights), litert_full_int8 (int8 weights and activations, "
        "calibrated on training text), hf (a Hugging Face folder); each but saved_model "
        "in <export_dir>/<format>/<version>.")
    text_signature: str = option(
        "auto", "The SavedModel's raw-text signature serving_text, tokenizing in the graph "
        "with tensorflow-text's WordPiece: auto (added where the student's tokenizer is "
        "WordPiece), on (required: a BPE student such as RoBERTa is refused before "
        "anything is trained or written), off (token ids only).", choices=TEXT_SIGNATURES)
    cache_dir: Optional[str] = option(
        None, "Folder for tokenized data and the teacher's cached logits (model_dir/cache). "
        "Share one between runs of the same teacher and task to tokenize and run the "
        "teacher only once.")
    learning_rate: float = option(1e-4, "Peak learning rate of the student.")
    teacher_learning_rate: float = option(1e-4, "Peak learning rate when fine-tuning the "
                                          "teacher.")
    teacher_epochs: int = option(3, "Teacher fine-tuning epochs.")
    warmup_proportion: float = option(0.1, "Share of steps spent warming the learning rate "
                                      "up.")
    weight_decay: float = option(0.01, "AdamW weight decay.")
    seed: int = option(0, "Random seed (data order, initialisation).")
    distribution_strategy: str = option("default", "default, one_device, mirrored, "
                                        "multi_worker_mirrored or tpu.")
    num_gpus: int = option(0, "GPUs for one_device / mirrored.")
    tpu: Optional[str] = option(None, "TPU address for --distribution_strategy=tpu.")
    checkpoint_steps: int = option(0, "Also back up every N steps (0: at epoch ends only).")
    early_stopping_patience: int = option(0, "Stop after N classifier epochs without dev "
                                          "gain (0: off).")
    mixed_precision: str = option(
        "none", "Keras mixed precision policy: mixed_float16 for GPUs (loss scaling is "
        "automatic), mixed_bfloat16 for TPUs and recent CPUs/GPUs.", choices=PRECISIONS)
    xla: bool = option(False, "Compile the train step with XLA (jit_compile); pays off on "
                       "GPUs and TPUs.  Always on with KERAS_BACKEND=jax.")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run needs."""

    mode: str = option("pipeline", "pipeline: fine-tune the teacher if needed, distil, "
                       "evaluate, export. Or one step alone.", choices=MODES)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    distill: DistillConfig = DistillConfig()
    train: TrainConfig = TrainConfig()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "distill": DistillConfig,
            "train": TrainConfig}


def flag_fields():
    """(section name or None for RunConfig's own, dataclass field) of every setting a
    command-line flag sets, in definition order."""
    yield None, next(f for f in dataclasses.fields(RunConfig) if f.name == "mode")
    for section, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            yield section, field


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
    for section, field in flag_fields():  # the settings with a fixed set of values
        value = getattr(getattr(config, section) if section else config, field.name)
        if field.metadata.get("choices") and value not in field.metadata["choices"]:
            raise ValueError(f"Unknown --{field.name} '{value}'. Choose one of: "
                             f"{', '.join(field.metadata['choices'])}.")
    if config.data.own_data:
        _validate_own_data(config.data)
    else:
        get_task(config.data.task)
    if config.distill.schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule '{config.distill.schedule}'. Choose one of: "
                         f"{', '.join(SCHEDULES)}.")
    if config.train.distribution_strategy not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy '{config.train.distribution_strategy}'."
                         f" Choose one of: {', '.join(STRATEGIES)}.")
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
    if config.data.speed_seconds < 0:
        raise ValueError("--speed_seconds must be 0 or more.")
    if not 0.0 <= config.train.warmup_proportion < 1.0:
        raise ValueError("--warmup_proportion must be in [0, 1).")
    _validate_added_text(config)
    unknown = [name for name in config.distill.internal_losses
               if name not in terms.INTERNAL_TERMS]
    if unknown or not config.distill.internal_losses:
        raise ValueError(f"--internal_losses: unknown term '{(unknown or [''])[0]}'; choose "
                         f"from {', '.join(terms.INTERNAL_TERMS)}.")
    for kind in terms.REGISTRY.values():
        if getattr(config.distill, kind.weight_flag) < 0:
            raise ValueError(f"--{kind.weight_flag} must be 0 or more.")
    unknown = [name for name in config.train.export_formats if name not in EXPORT_FORMATS]
    if unknown or not config.train.export_formats:
        raise ValueError(f"--export_formats: unknown format '{(unknown or [''])[0]}'; choose "
                         f"from {', '.join(EXPORT_FORMATS)}.")
    if not config.train.model_dir:
        raise ValueError("--model_dir is empty; name a folder or leave it unset.")
    return config


def _validate_added_text(config: RunConfig) -> None:
    data = config.data
    if data.augment < 0:
        raise ValueError(f"--augment must be 0 or more, got {data.augment}.")
    if not data.adds_text:
        return
    if config.distill.schedule == "finetune" and (
            data.transfer_file or data.transfer_task or data.augment_labels != "source"):
        raise ValueError("--schedule=finetune learns from gold labels alone: transfer text "
                         "has none and --augment copies get them only with "
                         "--augment_labels=source (or pick another --schedule).")
    if data.transfer_file and data.transfer_task:
        raise ValueError("Pass --transfer_file or --transfer_task, not both.")
    if data.augment_method == "mlm" and not data.augment_model and \
            config.model.teacher == TINY_TEACHER:
        raise ValueError("--augment_method=mlm needs a checkpoint with a masked-LM head, "
                         "which the tiny teacher lacks: pass --augment_model (e.g. "
                         "bert-base-uncased or a local folder) or --augment_method=embedding.")
    if data.transfer_task:
        get_task(data.transfer_task)
    if data.transfer_file and not (data.transfer_fields or data.text_fields):
        raise ValueError("--transfer_file needs --transfer_fields: the field holding the "
                         "text, or two comma-separated fields for pairs.")


def _validate_own_data(data: DataConfig) -> None:
    if data.task != OWN_DATA_TASK:
        raise ValueError("Pass either --task (a GLUE task) or --train_file (your own data), "
                         "not both.")
    if not data.dev_file:
        raise ValueError("--train_file needs --dev_file: a file in the same format that the "
                         "student is evaluated and selected on.")
    if len(data.text_fields) not in (1, 2) or not all(data.text_fields):
        raise ValueError("--train_file needs --text_fields: the field holding the text, or "
                         "two comma-separated fields for pairs (e.g. --text_fields=q1,q2).")
    if not data.label_field:
        raise ValueError("--train_file needs --label_field: the field holding the label.")
    if data.label_field in data.text_fields:
        raise ValueError(f"--label_field '{data.label_field}' is also a text field.")
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
    path = os.path.join(model_dir, "config.json")
    files.write_text(path, config.to_json())
    return path
