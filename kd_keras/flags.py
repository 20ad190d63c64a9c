"""Command-line flags (definitions only; main.py is the only reader)."""

from absl import flags

from kd_keras import config

# Defaults come from the config dataclasses, so the two cannot drift apart.
_D, _M, _K, _T = (config.DataConfig(), config.ModelConfig(), config.DistillConfig(),
                  config.TrainConfig())


def define_flags() -> None:
    """Registers every flag once."""
    if "task" in flags.FLAGS:
        return
    flags.DEFINE_enum("mode", config.RunConfig.mode, config.MODES,
                      "pipeline: fine-tune the teacher if needed, distil, evaluate, export. "
                      "Or one step alone.")
    # Data
    flags.DEFINE_string("task", _D.task, "GLUE task (cola, sst2, mrpc, qqp, stsb, mnli, "
                        "qnli, rte, wnli) or synthetic; not with --train_file.")
    flags.DEFINE_string("data_dir", None, "GLUE data folder holding <TASK>/train.tsv and "
                        "dev.tsv; defaults to $GLUE_DIR.")
    flags.DEFINE_bool("use_tfds", _D.use_tfds,
                      "Load TFDS glue/<task> when no data_dir is given.")
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data folder (TFDS default when unset).")
    flags.DEFINE_integer("max_seq_length", _D.max_seq_length, "Longest input in tokens.")
    flags.DEFINE_integer("batch_size", _D.batch_size, "Global training batch size.")
    flags.DEFINE_integer("eval_batch_size", _D.eval_batch_size, "Evaluation batch size.")
    flags.DEFINE_bool("skip_bad_rows", _D.skip_bad_rows,
                      "Skip malformed TSV rows (and report how many) instead of failing.")
    flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples.")
    flags.DEFINE_integer("max_eval_examples", None, "Use only the first N dev examples.")
    flags.DEFINE_integer("synthetic_size", _D.synthetic_size,
                         "Training examples of the synthetic task.")
    # Own data
    flags.DEFINE_string("train_file", _D.train_file, "Your own training data instead of "
                        "--task: .csv or .tsv with a header row, or .jsonl (one object a "
                        "line).")
    flags.DEFINE_string("dev_file", _D.dev_file, "Your own evaluation data, in the same "
                        "fields (any of the three formats).")
    flags.DEFINE_list("text_fields", list(_D.text_fields), "With --train_file: the field "
                      "holding the text, or two comma-separated fields for sentence pairs.")
    flags.DEFINE_string("label_field", _D.label_field, "With --train_file: the label field.")
    flags.DEFINE_enum("task_type", _D.task_type, ["classification", "regression"],
                      "With --train_file: classes read from the training file (accuracy, "
                      "macro F1) or a real-valued score (Pearson, Spearman).")
    # Models
    flags.DEFINE_string("teacher", None, "tiny (built on the spot from random weights, its "
                        "vocabulary from the training texts), "
                        "minilm (pip package), a local Hugging Face folder or a hub name. "
                        "Default: tiny for the synthetic task, minilm otherwise.")
    flags.DEFINE_bool("teacher_finetuned", _M.teacher_finetuned,
                      "The teacher is already fine-tuned on the task: skip fine-tuning.")
    flags.DEFINE_integer("tiny_layers", _M.tiny_layers, "Layers of the tiny teacher.")
    flags.DEFINE_integer("tiny_hidden_size", _M.tiny_hidden_size, "Width of the tiny teacher.")
    flags.DEFINE_integer("tiny_heads", _M.tiny_heads, "Heads of the tiny teacher.")
    flags.DEFINE_string("student", None, "A pretrained student instead of one cut from the "
                        "teacher: minilm, a local Hugging Face folder or a hub name. It must "
                        "use the teacher's vocabulary; --student_layers and --student_init "
                        "are then ignored.")
    flags.DEFINE_integer("student_layers", _M.student_layers, "Student depth.")
    flags.DEFINE_integer("student_hidden_size", None, "Student width (teacher's when unset; "
                         "another width needs --student_init=random).")
    flags.DEFINE_enum("student_init", _M.student_init, ["teacher", "random"],
                      "Copy embeddings and matched layers from the teacher, or start random.")
    flags.DEFINE_list("layer_map", None, "Teacher layer (1-based) for each student layer, "
                      "e.g. 2,4,6; default k * L_t / L_s.")
    # Method
    flags.DEFINE_string("schedule", _K.schedule, "all, pid, sid, kd (standard KD "
                        "baseline) or finetune (student alone).")
    flags.DEFINE_integer("epochs", _K.epochs, "Epochs of kd / all / finetune, and of the "
                         "final classifier stage of pid / sid.")
    flags.DEFINE_integer("epochs_per_stage", _K.epochs_per_stage,
                         "Epoch limit of each internal pid / sid stage.")
    flags.DEFINE_float("cos_threshold", _K.cos_threshold, "An internal stage also ends when "
                       "its mean [CLS] cosine loss falls below this (0: never).")
    flags.DEFINE_bool("kd_every_stage", _K.kd_every_stage,
                      "Add the soft-label loss to every pid / sid stage.")
    flags.DEFINE_bool("cache_teacher_logits", _K.cache_teacher_logits,
                      "Run the frozen teacher over the training set once and reuse its "
                      "logits, so stages that need only them (kd, classifier) run no teacher.")
    flags.DEFINE_float("hard_label_weight", _K.hard_label_weight,
                       "lambda: KD loss = soft + lambda * hard.")
    flags.DEFINE_float("temperature", _K.temperature, "Soft-label temperature.")
    flags.DEFINE_float("attention_weight", _K.attention_weight, "Weight of attention KL terms.")
    flags.DEFINE_float("cosine_weight", _K.cosine_weight, "Weight of [CLS] cosine terms.")
    # Training
    flags.DEFINE_string("model_dir", _T.model_dir, "Output folder of one run: config, "
                        "checkpoints, TensorBoard logs, models, results.json. Default: "
                        "runs/<task>_<schedule> (the demo: /tmp/kd_keras_demo).")
    flags.DEFINE_string("export_dir", None, "SavedModel base folder (model_dir/export).")
    flags.DEFINE_string("cache_dir", None, "Folder for tokenized data and the teacher's "
                        "cached logits (model_dir/cache). Share one between runs of the "
                        "same teacher and task to tokenize and run the teacher only once.")
    flags.DEFINE_integer("export_version", None, "Version folder (next free number).")
    flags.DEFINE_float("learning_rate", _T.learning_rate, "Peak learning rate of the student.")
    flags.DEFINE_float("teacher_learning_rate", _T.teacher_learning_rate,
                       "Peak learning rate when fine-tuning the teacher.")
    flags.DEFINE_integer("teacher_epochs", _T.teacher_epochs, "Teacher fine-tuning epochs.")
    flags.DEFINE_float("warmup_proportion", _T.warmup_proportion,
                       "Share of steps spent warming the learning rate up.")
    flags.DEFINE_float("weight_decay", _T.weight_decay, "AdamW weight decay.")
    flags.DEFINE_integer("seed", _T.seed, "Random seed (data order, initialisation).")
    flags.DEFINE_string("distribution_strategy", _T.distribution_strategy,
                        "default, one_device, mirrored, multi_worker_mirrored or tpu.")
    flags.DEFINE_integer("num_gpus", _T.num_gpus, "GPUs for one_device / mirrored.")
    flags.DEFINE_string("tpu", None, "TPU address for --distribution_strategy=tpu.")
    flags.DEFINE_integer("checkpoint_steps", _T.checkpoint_steps,
                         "Also back up every N steps (0: at epoch ends only).")
    flags.DEFINE_integer("early_stopping_patience", _T.early_stopping_patience,
                         "Stop after N classifier epochs without dev gain (0: off).")
    flags.DEFINE_enum("mixed_precision", _T.mixed_precision, list(config.PRECISIONS),
                      "Keras mixed precision policy: mixed_float16 for GPUs (loss scaling "
                      "is automatic), mixed_bfloat16 for TPUs and recent CPUs/GPUs.")
    flags.DEFINE_bool("xla", _T.xla, "Compile the train step with XLA (jit_compile); "
                      "pays off on GPUs and TPUs.")
    # Predict
    flags.DEFINE_string("predict_file", None, "predict mode: GLUE tasks: a TSV in the task's "
                        "dev format; own data: a .csv/.tsv/.jsonl file with the text fields.")
    flags.DEFINE_string("output_file", None, "predict mode: where predictions go (own data: "
                        ".csv, .tsv or .jsonl, with the class probabilities).")
