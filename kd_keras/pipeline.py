"""The steps of a run, each a function of a RunConfig: teacher, distil, evaluate, export,
predict; and ``run``, which checks the folder's identity and runs the configured mode.

model_dir layout:
    config.json        the run configuration
    run_identity.json  what the folder holds (run_identity.py): another run is refused
    teacher/           the fine-tuned teacher (Hugging Face folder, reused by later runs)
    student/           the best student by dev metric (Hugging Face folder)
    backup/            resumable training state (removed when training finishes)
    cache/             tokenized features
    logs/teacher, logs/distill   TensorBoard runs
    results.json       metrics, parameter counts, speed, stage history
    dev_predictions.npz  dev labels, teacher and student logits
    export/<version>/  the student SavedModel for TF Serving
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np

from kd_keras import backends, callbacks, distiller, distribute, files, models, predictions
from kd_keras import optimization, run_identity, schedules, tasks, tokenization
from kd_keras import config as config_lib
from kd_keras import metrics as glue_metrics
from kd_keras.config import TINY_TEACHER, RunConfig
from kd_keras.data import batching, glue, own_files, sources, synthetic, vocab
from kd_keras.data.examples import DataError, Example, splits
from kd_keras.data.features import Features, tokenize
from kd_keras.encoders import EncoderClassifier
from kd_keras.tasks import TaskSpec, get_task


@dataclasses.dataclass
class TaskData:
    """Tokenized splits of the run's task.

    Attributes:
        extra_dev: more evaluation splits by name (MNLI's dev_mismatched), reported
            beside dev; dev alone selects the best checkpoint.
    """

    spec: TaskSpec
    tokenizer: object
    train: Features
    dev: Features
    skipped: int
    extra_dev: Dict[str, Features] = dataclasses.field(default_factory=dict)


def _path(config: RunConfig, *parts: str) -> str:
    return os.path.join(config.train.model_dir, *parts)


def _shared_path(config: RunConfig, *parts: str) -> str:
    """A path in the chief's model_dir: what every worker of a multi-worker run reads
    (the same as _path in a one-process run)."""
    return os.path.join(config.train.shared_model_dir or config.train.model_dir, *parts)


def cache_dir(config: RunConfig) -> str:
    """Where tokenized data, unpacked models and teacher logits are cached."""
    return config.train.cache_dir or _path(config, "cache")


def _verbose() -> int:
    """A progress bar on a terminal, one summary line per epoch otherwise."""
    return 1 if sys.stdout.isatty() else 2


# --------------------------------------------------------------------------- inputs


def task_spec(config: RunConfig, labels: Optional[List[str]] = None) -> TaskSpec:
    """The run's task: a GLUE / synthetic spec, or one built from the user's files.

    Args:
        config: the run.
        labels: own data: the class names in index order when already known (those
            recorded in model_dir); read from the training file when None.

    Raises:
        DataError, ValueError: the user's files or fields cannot be used.
    """
    d = config.data
    if not d.own_data:
        return get_task(d.task)
    if labels is None and d.task_type == "classification":
        rows, _ = own_files.read_own_rows(d.train_file, d.text_fields, d.label_field,
                                     d.skip_bad_rows)
        labels = own_files.own_labels(rows)
    return tasks.from_files(d.train_file, d.dev_file, d.text_fields, d.label_field,
                            d.task_type, labels)


def _examples(config: RunConfig, spec: TaskSpec, split: str) -> Tuple[List[Example], int]:
    d = config.data
    limit = d.max_train_examples if split == "train" else d.max_eval_examples
    return sources.load_examples(spec, split, data_dir=d.data_dir, use_tfds=d.use_tfds,
                              tfds_data_dir=d.tfds_data_dir, skip_bad_rows=d.skip_bad_rows,
                              max_examples=limit, synthetic_size=d.synthetic_size,
                              seed=config.train.seed)


def load_tokenizer(config: RunConfig, spec: TaskSpec):
    """The teacher's tokenizer: the one saved with the fine-tuned teacher in model_dir (the
    chief's), the tiny teacher's (the synthetic vocab, or one built from the training
    texts), or that of --teacher."""
    teacher_dir = _shared_path(config, "teacher")
    if os.path.isdir(teacher_dir):
        return models.load_tokenizer(teacher_dir, cache_dir(config))
    if config.model.teacher == TINY_TEACHER:
        if spec.source == "synthetic":
            tokens = synthetic.synthetic_vocab()
        else:
            examples, _ = _examples(config, spec, "train")
            tokens = vocab.build_vocab(text for e in examples for text in (e.text_a, e.text_b)
                                      if text)
        with tempfile.TemporaryDirectory() as folder:  # the tokenizer keeps it in memory
            vocab_path = os.path.join(folder, "vocab.txt")
            vocab.write_vocab(vocab_path, tokens)
            return models.load_tokenizer(vocab_path, cache_dir(config))
    return models.load_tokenizer(config.model.teacher, cache_dir(config))


def load_task_data(config: RunConfig, tokenizer, spec: TaskSpec) -> TaskData:
    """Loads and tokenizes every split of the task, reporting skipped rows."""
    cfg = config.data
    features, skipped = {}, 0
    for split in splits(spec):
        examples, bad = _examples(config, spec, split)
        if bad:
            print(f"Skipped {bad} malformed row(s) in the {split} split of {spec.name}.")
        skipped += bad
        source = spec.files if spec.files else cfg.data_dir
        features[split] = tokenize(
            examples, tokenizer, cfg.max_seq_length, cache_dir=cache_dir(config),
            cache_key=f"{spec.name}/{split}/{source}", regression=spec.is_regression)
    extra = {split: features[split] for split in splits(spec)[2:]}
    print(f"Task {spec.name}: {len(features['train'])} train and {len(features['dev'])} dev "
          "examples" + "".join(f", {len(f)} {name}" for name, f in extra.items()) + ".")
    return TaskData(spec, tokenizer, features["train"], features["dev"], skipped, extra)


# --------------------------------------------------------------------------- teacher


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says what to change."""


def remove_backup(backup_root: str, run_name: str, strategy) -> None:
    """Removes a finished run's backup: nothing is left to resume.

    Every worker backs up into the same backup_root (the chief's folder, which all of
    them resume from), so only the chief removes it, and only after every worker has
    finished writing its last backup: a worker that removed it as soon as its own fit()
    returned deleted the other worker's checkpoint while it was being written.
    """
    distribute.wait_for_all_workers(strategy)
    if not distribute.is_chief(strategy):
        return
    shutil.rmtree(os.path.join(backup_root, run_name), ignore_errors=True)
    try:
        os.rmdir(backup_root)  # only if empty: another run's backup may still be there
    except OSError:
        pass


def _fit(config: RunConfig, model: distiller.Distiller, task: TaskData, learning_rate: float,
         run_name: str, extra_callbacks: List, strategy, output_dir: str,
         teacher_logits: Optional[np.ndarray] = None) -> Dict:
    """Compiles a Distiller and trains it over its whole schedule, one ``fit`` per epoch,
    with backups and TensorBoard.

    A backup in model_dir/backup/<run_name> from an interrupted run is resumed: weights,
    optimizer, dropout states, stage, callback bookkeeping and the input position all
    continue.  Each epoch is its own ``fit`` call (a resumed epoch runs only its remaining
    batches), and the step is retraced between two when the stage changed.
    ``output_dir`` is the model folder the callbacks write; it is removed if the loss
    diverges (TrainingDiverged).  ``teacher_logits`` (float32 [train examples, labels])
    go with the training batches when the teacher's logits were computed beforehand.
    """
    cfg = config.data
    epochs = model.schedule.max_epochs
    steps_per_epoch = batching.batches_per_epoch(task.train.lengths, cfg.batch_size)
    with strategy.scope():
        model.compile(optimizer=optimization.make_optimizer(
            learning_rate, epochs * steps_per_epoch, config.train.warmup_proportion,
            config.train.weight_decay,
            model.stage_start if config.distill.stage_warmup else None),
            jit_compile=config.train.xla or backends.current().COMPILES_STEPS)
        model.build_optimizer()
    backup_root = _shared_path(config, "backup")
    backup_dir = os.path.join(backup_root, run_name)
    backup = callbacks.TrainingBackup(backup_dir, steps_per_epoch, config.train.checkpoint_steps,
                                      writes=distribute.is_chief(strategy))
    backup.set_model(model)
    backup.restore()  # before the other callbacks read the stage and the bookkeeping
    epoch, batch = callbacks.backup_position(backup_dir, steps_per_epoch)
    if (epoch, batch) != (0, 0):
        print(f"Resuming {run_name} from its backup at epoch {epoch + 1}, batch {batch + 1}.")
    dev_ds = backends.make_dataset(task.dev, cfg.eval_batch_size, training=False)
    controller = callbacks.StageController()
    nan_guard = callbacks.StopOnNaN()
    tensorboard = callbacks.TensorBoard(_path(config, "logs", run_name))
    # Order matters: the epoch-end backup comes after the callbacks that update the stage
    # and the bookkeeping.
    callback_list = ([backup, nan_guard, controller] + extra_callbacks
                     + [tensorboard, backup.closing_callback()])

    def epoch_data(first_epoch: int, first_batch: int):
        return backends.make_dataset(task.train, cfg.batch_size, training=True,
                                     seed=config.train.seed, teacher_logits=teacher_logits,
                                     epochs=first_epoch + 1, start_epoch=first_epoch,
                                     start_batch=first_batch)

    history = model.fit_schedule(epoch_data, steps_per_epoch, callback_list, dev_ds,
                                 start_epoch=epoch, start_batch=batch, verbose=_verbose())
    remove_backup(backup_root, run_name, strategy)
    if nan_guard.failed_at is not None:
        shutil.rmtree(output_dir, ignore_errors=True)
        failed_epoch, failed_batch = nan_guard.failed_at
        raise TrainingDiverged(
            f"the {run_name} loss became NaN or infinite at epoch {failed_epoch}, batch "
            f"{failed_batch}; lower --{'teacher_' if run_name == 'teacher' else ''}"
            f"learning_rate (now {learning_rate:g}) or the loss weights, and run again.")
    return {"history": history, "stages": controller.history}


def teacher_is_finetuned(config: RunConfig) -> bool:
    """Whether model_dir (the chief's, on every worker) already holds a teacher
    fine-tuned on this task."""
    marker = _shared_path(config, "teacher", "kd_keras_task.json")
    if not os.path.exists(marker):
        return False
    with open(marker, encoding="utf-8") as handle:
        return json.load(handle).get("task") == config.data.task


def load_teacher(config: RunConfig, task: TaskData) -> EncoderClassifier:
    """The fine-tuned teacher from model_dir, or --teacher as given."""
    cache, spec = cache_dir(config), task.spec
    if teacher_is_finetuned(config):
        return models.load_pretrained(_shared_path(config, "teacher"), spec.num_labels, cache)
    if config.model.teacher == TINY_TEACHER:
        m = config.model
        bert = models.bert_config(len(task.tokenizer.get_vocab()), spec.num_labels,
                                  num_layers=m.tiny_layers, hidden_size=m.tiny_hidden_size,
                                  num_heads=m.tiny_heads, max_position_embeddings=
                                  max(128, config.data.max_seq_length))
        return models.build_model(bert, seed=config.train.seed)
    return models.load_pretrained(config.model.teacher, spec.num_labels, cache)


def train_teacher(config: RunConfig, task: TaskData, strategy) -> EncoderClassifier:
    """Fine-tunes the teacher on the task and saves it to model_dir/teacher."""
    with strategy.scope():
        teacher = load_teacher(config, task)
        model = distiller.Distiller(teacher, None, schedules.finetune(
            config.train.teacher_epochs, task.spec.is_regression))
    print(f"Fine-tuning the teacher ({teacher.num_layers} layers, "
          f"{models.count_params(teacher):,} parameters) for {config.train.teacher_epochs} "
          "epochs.")
    best_dir = _path(config, "teacher")

    def save_best(record):
        models.save_model(teacher, task.tokenizer, best_dir, task.spec.labels)

    dev_ds = backends.make_dataset(task.dev, config.data.eval_batch_size, training=False)
    evaluator = callbacks.DevEvaluator(dev_ds, task.dev.labels, task.spec.metrics,
                                       task.spec.is_regression, save_best)
    _fit(config, model, task, config.train.teacher_learning_rate, "teacher", [evaluator],
         strategy, best_dir)
    # The marker goes last: only a finished fine-tuning counts as a fine-tuned teacher
    # (an interrupted one resumes from its backup instead).
    files.write_json(os.path.join(best_dir, "kd_keras_task.json"),
                     {"task": task.spec.name, "dev": evaluator.best,
                      "dev_history": evaluator.history})
    with strategy.scope():
        return models.load_pretrained(best_dir, task.spec.num_labels, cache_dir(config))


def ensure_teacher(config: RunConfig, task: TaskData, strategy) -> EncoderClassifier:
    """The fine-tuned teacher: cached in model_dir, given as fine-tuned, or trained now."""
    if teacher_is_finetuned(config) or config.model.teacher_finetuned:
        with strategy.scope():
            return load_teacher(config, task)
    return train_teacher(config, task, strategy)


# --------------------------------------------------------------------------- distil


def build_student(config: RunConfig, teacher: EncoderClassifier, tokenizer):
    """The student (cut from the teacher, or --student checked against it) and the
    layer mapping [(student_layer, teacher_layer)]."""
    m = config.model
    if m.student:
        student = models.load_student(m.student, teacher, tokenizer, cache_dir(config))
        return student, models.layer_mapping(teacher.num_layers, student.num_layers,
                                             m.layer_map)
    mapping = models.layer_mapping(teacher.num_layers, m.student_layers, m.layer_map)
    student = models.derive_student(teacher, m.student_layers, mapping,
                                    hidden_size=m.student_hidden_size, init=m.student_init,
                                    seed=config.train.seed)
    return student, mapping


def distill(config: RunConfig, task: TaskData, teacher: EncoderClassifier,
            strategy) -> Tuple[EncoderClassifier, Dict]:
    """Distils the teacher into a new student; saves the best one to model_dir/student."""
    d = config.distill
    with strategy.scope():
        student, mapping = build_student(config, teacher, task.tokenizer)
        schedule = schedules.build(d, mapping, task.spec.is_regression)
        model = distiller.Distiller(student, None if d.schedule == "finetune" else teacher,
                                    schedule)
    print(f"Distilling {teacher.num_layers} -> {student.num_layers} layers with schedule "
          f"'{d.schedule}', layer pairs (student, teacher): {mapping}.")
    student_dir = _path(config, "student")

    def save_best(record):
        models.save_model(student, task.tokenizer, student_dir, task.spec.labels)

    dev_ds = backends.make_dataset(task.dev, config.data.eval_batch_size, training=False)
    evaluator = callbacks.DevEvaluator(dev_ds, task.dev.labels, task.spec.metrics,
                                       task.spec.is_regression, save_best,
                                       config.train.early_stopping_patience)
    example = {k: v[None] for k, v in task.dev.row(0).items()}
    hparams = {"schedule": d.schedule, "lambda": d.hard_label_weight, "temperature":
               d.temperature, "internal_losses": ",".join(d.internal_losses),
               "teacher_layers": teacher.num_layers, "student_layers": student.num_layers,
               "kd_every_stage": d.kd_every_stage,
               "learning_rate": config.train.learning_rate, "seed": config.train.seed}
    extras = [evaluator]
    if d.schedule != "finetune":
        extras.append(callbacks.TensorBoardExtras(_path(config, "logs", "distill"), hparams,
                                                  example))
    logits = None
    if d.cache_teacher_logits and model.reads_teacher_logits:
        logits = cached_teacher_logits(teacher, task.train, config.data.eval_batch_size,
                                       cache_dir(config))
    fit_info = _fit(config, model, task, config.train.learning_rate, "distill", extras,
                    strategy, student_dir, logits)
    fit_info["best_epoch"] = evaluator.best
    fit_info["dev_history"] = evaluator.history
    with strategy.scope():
        best = models.load_pretrained(student_dir, task.spec.num_labels, cache_dir(config))
    return best, fit_info


def cached_teacher_logits(teacher: EncoderClassifier, features: Features,
                          batch_size: int, folder: str) -> np.ndarray:
    """The frozen teacher's logits on ``features``, computed once per teacher and data.

    The file in ``folder`` is keyed by a digest of the teacher's weights, the token ids,
    the batch size and the precision policy, so runs that share a cache folder reuse it
    and a changed teacher or dataset never reads stale logits.

    Returns:
        float32 [num_examples, num_labels] in example order.
    """
    digest = hashlib.sha1()
    for weight in teacher.weights:  # in build order; names would carry Keras' counters
        digest.update(str(tuple(weight.shape)).encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    for name in sorted(features.flat):
        digest.update(np.ascontiguousarray(features.flat[name]).tobytes())
    digest.update(np.ascontiguousarray(features.lengths).tobytes())
    digest.update(f"{batch_size}/{keras.config.dtype_policy().name}".encode())
    path = os.path.join(folder, f"teacher_logits_{digest.hexdigest()[:20]}.npy")
    if os.path.exists(path):
        print(f"Reusing the teacher's logits on {len(features)} training examples from "
              f"{path}.")
        return np.load(path)
    started = time.perf_counter()
    logits = predict_logits(teacher, features, batch_size)
    files.save_npy(path, logits)  # runs sharing the folder never read half a file
    print(f"Cached the teacher's logits on {len(logits)} training examples in "
          f"{time.perf_counter() - started:.1f} s.")
    return logits


# --------------------------------------------------------------------------- evaluate


def predict_logits(model: EncoderClassifier, features: Features,
                   batch_size: int) -> np.ndarray:
    """Logits float32 [n, labels] in example order."""
    dataset = backends.make_dataset(features, batch_size, training=False)
    forward = backends.current().logits_function(model)
    # [: n]: numpy batches fill the last one up with copies (backends.make_dataset).
    return np.concatenate([np.asarray(forward(x)) for x, *_ in dataset])[: len(features)]


def logits_and_speeds(classifiers: Dict[str, EncoderClassifier], features: Features,
                      batch_size: int, min_rounds: int = 3, min_seconds: float = 1.0
                      ) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
    """Each model's logits on ``features`` and its examples per second, timed side by side.

    The logits (float32 [n, labels] in example order) come from a first, untimed pass
    (tracing, warm-up). Then every round times one pass of each model, in reverse order
    every other round, until ``min_rounds`` rounds are done and each model has been timed
    for ``min_seconds`` (small dev sets pass in a fraction of a second, where timer noise
    dominates). A model's speed comes from its median pass, so a burst of load from
    another process spoils a round, not the comparison.
    """
    # Batches are padded once, before any timing: at short lengths the input pipeline
    # costs as much as a small model's forward and would shrink the measured speed-up.
    batches = [x for x, *_ in backends.make_dataset(features, batch_size, training=False)]
    forwards = {name: backends.current().logits_function(classifier)
                for name, classifier in classifiers.items()}
    logits = {name: np.concatenate([np.asarray(forward(x)) for x in batches])[: len(features)]
              for name, forward in forwards.items()}
    passes = {name: [] for name in forwards}
    order = list(forwards)
    while (len(passes[order[0]]) < min_rounds
           or min(sum(times) for times in passes.values()) < min_seconds):
        for name in order:
            start = time.perf_counter()
            for x in batches:
                np.asarray(forwards[name](x))
            passes[name].append(time.perf_counter() - start)
        order.reverse()
    speeds = {name: len(features) / max(float(np.median(times)), 1e-9)
              for name, times in passes.items()}
    return logits, speeds


def attention_kl_per_layer(teacher, student, mapping, task: TaskData,
                           batch_size: int) -> Optional[Dict[str, float]]:
    """Dev attention KL of every matched pair (None when head counts differ)."""
    if teacher.num_heads != student.num_heads:
        return None
    method = config_lib.DistillConfig(schedule="all", internal_losses=("attention_kl",))
    probe = distiller.Distiller(student, teacher, schedules.build(
        method, mapping, task.spec.is_regression))
    probe.compile()
    values = probe.evaluate(backends.make_dataset(task.dev, batch_size, training=False),
                            return_dict=True, verbose=0)
    return {name: float(values[name]) for name in sorted(values) if name.startswith("att_kl_")}


def majority_class(task: TaskData) -> Optional[Dict]:
    """The baseline that always predicts the training set's most frequent class, scored on
    dev (None for regression): what a student must beat on imbalanced data."""
    spec = task.spec
    if spec.is_regression:
        return None
    counts = np.bincount(task.train.labels, minlength=spec.num_labels)
    majority = int(np.argmax(counts))
    constant = np.eye(spec.num_labels)[np.full(len(task.dev), majority)]
    return {"label": spec.labels[majority],
            "train_share": float(counts[majority] / counts.sum()),
            "dev": glue_metrics.compute(spec.metrics, task.dev.labels, constant)}


def evaluate(config: RunConfig, task: TaskData, teacher: EncoderClassifier,
             student: EncoderClassifier) -> Dict:
    """Dev metrics, parameter counts, speed and attention KL of teacher and student, the
    majority-class baseline, and the metrics on any extra evaluation split."""
    spec, batch = task.spec, config.data.eval_batch_size
    report = {}
    models_by_name = {"teacher": teacher, "student": student}
    dev_logits, speeds = logits_and_speeds(models_by_name, task.dev, batch,
                                           min_seconds=config.data.speed_seconds)
    saved = {"labels": task.dev.labels, "teacher_logits": dev_logits["teacher"],
             "student_logits": dev_logits["student"]}
    for name, classifier in models_by_name.items():
        report[name] = {"dev": glue_metrics.compute(spec.metrics, task.dev.labels,
                                                    dev_logits[name], spec.is_regression),
                        "parameters": models.count_params(classifier),
                        "layers": classifier.num_layers,
                        "examples_per_second": speeds[name]}
        for split, features in task.extra_dev.items():
            logits = predict_logits(classifier, features, batch)
            report[name][split] = glue_metrics.compute(spec.metrics, features.labels, logits,
                                                       spec.is_regression)
            saved[f"{split}_{name}_logits"] = logits
            saved[f"{split}_labels"] = features.labels
    report["majority_class"] = majority_class(task)
    mapping = models.layer_mapping(teacher.num_layers, student.num_layers,
                                   config.model.layer_map)
    per_layer = attention_kl_per_layer(teacher, student, mapping, task, batch)
    report["student"]["attention_kl"] = per_layer
    report["student"]["attention_kl_mean"] = (None if per_layer is None
                                              else float(np.mean(list(per_layer.values()))))
    report["speedup"] = (report["student"]["examples_per_second"]
                         / report["teacher"]["examples_per_second"])
    # Per-example dev outputs, for paired comparisons of runs (scripts/summarize_study.py).
    files.save_npz(_path(config, "dev_predictions.npz"), **saved)
    return report


def write_results(config: RunConfig, results: Dict) -> str:
    """Writes results.json into model_dir atomically."""
    path = _path(config, "results.json")
    files.write_json(path, results, default=float)
    return path


def results_table(results: Dict, main_metric: str) -> str:
    """Teacher vs student, as a plain-text table."""
    rows = [("", "teacher", "student")]
    metric_names = [main_metric] + [m for m in results["student"]["dev"] if m != main_metric]
    metric_rows = [(f"dev {m}", "dev", m) for m in metric_names]
    metric_rows += [(f"{split} {main_metric}", split, main_metric)
                    for split in results["student"] if split.startswith("dev_")]
    for label, split, metric in metric_rows:
        rows.append((label, *(f"{results[who][split][metric]:,.4f}"
                              for who in ("teacher", "student"))))
    for label, key in (("layers", "layers"), ("parameters", "parameters"),
                       ("examples/s", "examples_per_second")):
        values = [results[who][key] for who in ("teacher", "student")]
        rows.append((label, *(f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"
                              for v in values)))
    majority = results.get("majority_class")
    if majority:
        rows.append((f"majority class '{majority['label']}', dev {main_metric}", "",
                     f"{majority['dev'][main_metric]:,.4f}"))
    kl = results["student"].get("attention_kl_mean")
    if kl is not None:
        rows.append(("attention KL (mean)", "", f"{kl:.4f}"))
    rows.append(("speed-up", "", f"{results['speedup']:.2f}x"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.rjust(width[i]) if i else cell.ljust(width[i])
                               for i, cell in enumerate(row)) for row in rows)


# --------------------------------------------------------------------------- export


def export_dir(config: RunConfig) -> str:
    return config.train.export_dir or _path(config, "export")


def export_student_model(config: RunConfig, spec: TaskSpec, student: EncoderClassifier,
                         tokenizer, version: Optional[int] = None) -> str:
    """Exports the student SavedModel; returns the version folder."""
    from kd_keras import export

    labels = list(spec.labels) if spec.labels else ["score"]
    lower = bool(getattr(tokenizer, "do_lower_case", True))
    wordpiece = tokenization.is_wordpiece(tokenizer)
    if not wordpiece:
        print("Note: the raw-text signature needs a WordPiece vocabulary; this model's "
              "tokenizer is BPE, so the export has serving_default (token ids) only.")
    return export.export_student(student, models.vocab_tokens(tokenizer), labels,
                                 export_dir(config), config.data.max_seq_length,
                                 spec.is_pair, version=version, lower_case=lower,
                                 text_signature=wordpiece)


def strategy_for(config: RunConfig):
    t = config.train
    strategy = backends.strategy(t.distribution_strategy, t.num_gpus, t.tpu)
    devices = getattr(strategy, "devices", None)  # JAX DataParallel splits every batch
    if devices:
        for flag in ("batch_size", "eval_batch_size"):
            size = getattr(config.data, flag)
            if size % len(devices):
                raise ValueError(f"--{flag}={size} does not split over the {len(devices)} "
                                 f"devices of --distribution_strategy=mirrored; pass a "
                                 f"multiple of {len(devices)}.")
    return strategy


# --------------------------------------------------------------------------- a run


def run(config: RunConfig) -> int:
    """Runs the configured mode; returns the process exit code.

    Raises:
        DataError, ModelError, ExportError, TrainingDiverged, ValueError: a problem the
            user can fix; the message says how.
    """
    strategy = strategy_for(config)  # first: multi-worker needs a fresh context
    keras.utils.set_random_seed(config.train.seed)
    # Before any model is built: layers take the global policy when created.
    keras.mixed_precision.set_global_policy(
        "float32" if config.train.mixed_precision == "none" else config.train.mixed_precision)
    shared_dir = config.train.model_dir
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, model_dir=distribute.worker_folder(shared_dir, strategy),
        shared_model_dir=shared_dir))
    model_dir = config.train.model_dir
    # Before anything is written: a folder holding another run is never touched.
    run_identity.check(model_dir, run_identity.describe(config))
    # Compiled steps (JAX) are kept beside the other caches, so a resumed run or one
    # sharing --cache_dir does not compile the same shapes again.
    backends.current().use_compilation_cache(os.path.join(cache_dir(config), backends.name()))
    mode = config.mode
    recorded_labels = run_identity.recorded(shared_dir).get("labels")
    spec = task_spec(config, recorded_labels if mode in ("predict", "export") else None)
    tokenizer = load_tokenizer(config, spec)
    identity = run_identity.describe(config, models.tokenizer_digest(tokenizer), spec.labels)
    if mode in ("export", "predict"):
        run_identity.check(model_dir, identity)
        if mode == "predict":
            return _predict(config, spec, tokenizer)
        if not backends.current().EXPORTS_SAVED_MODEL:
            raise ValueError(f"--mode=export writes a TensorFlow SavedModel, which needs Keras' "
                             f"TensorFlow backend (this run is on {backends.name()}); "
                             "run it again with KERAS_BACKEND=tensorflow.")
        student = _load_student(config, spec)
        print("Exported", export_student_model(config, spec, student, tokenizer,
                                               config.train.export_version))
        return 0
    started = time.time()
    task = load_task_data(config, tokenizer, spec)
    run_identity.record(model_dir, identity)
    config_lib.save(config, model_dir)
    if mode == "train_teacher":
        train_teacher(config, task, strategy)
        return 0
    teacher = ensure_teacher(config, task, strategy)
    results = {"task": spec.name, "schedule": config.distill.schedule,
               "skipped_rows": task.skipped}
    if spec.files:
        results["data"] = {"train_file": spec.files[0], "dev_file": spec.files[1],
                           "labels": list(spec.labels) if spec.labels else None}
    if mode == "evaluate":
        student = _load_student(config, spec)
    else:
        student, fit_info = distill(config, task, teacher, strategy)
        results.update(stages=fit_info["stages"], best_epoch=fit_info["best_epoch"],
                       history=fit_info["history"], dev_history=fit_info["dev_history"])
        if mode == "distill":
            print(f"Best student saved to {os.path.join(model_dir, 'student')}.")
    results.update(evaluate(config, task, teacher, student))
    if mode == "pipeline" and backends.current().EXPORTS_SAVED_MODEL:
        results["export"] = export_student_model(config, spec, student, tokenizer,
                                                 config.train.export_version)
    elif mode == "pipeline":
        print(f"Export skipped: a SavedModel needs Keras' TensorFlow backend; export this "
              f"student with KERAS_BACKEND=tensorflow python -m kd_keras.main --mode=export "
              f"--model_dir={shared_dir} (and this run's other flags).")
    results["wall_seconds"] = time.time() - started
    path = write_results(config, results)
    print()
    print(results_table(results, spec.main_metric))
    print(f"\nResults: {path}")
    if "export" in results:
        print(f"Student SavedModel: {results['export']}")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(model_dir, 'logs')}")
    return 0


def _load_student(config: RunConfig, spec: TaskSpec) -> EncoderClassifier:
    """The best student that model_dir (the chief's) holds."""
    folder = _shared_path(config, "student")
    if not os.path.isdir(folder):
        raise models.ModelError(f"No student in {folder}; run --mode=distill (or the "
                                "pipeline) with this --model_dir first.")
    return models.load_pretrained(folder, spec.num_labels, cache_dir(config))


def _predict(config: RunConfig, spec: TaskSpec, tokenizer) -> int:
    """Labels --predict_file into --output_file with the best student."""
    if not config.data.predict_file or not config.data.output_file:
        raise ValueError("--mode=predict needs --predict_file and --output_file.")
    if spec.files:
        predictions.check_output_format(config.data.output_file)
        rows, skipped = own_files.read_own_rows(config.data.predict_file, spec.text_fields, None,
                                           config.data.skip_bad_rows)
        examples = [Example(r.text_a, r.text_b, 0) for r in rows]
    else:
        examples, skipped = glue.read_glue_tsv(config.data.predict_file, spec,
                                               config.data.skip_bad_rows)
    if not examples:
        raise DataError(f"{config.data.predict_file} has no rows to predict.")
    student = _load_student(config, spec)
    features = tokenize(examples, tokenizer, config.data.max_seq_length,
                             regression=spec.is_regression)
    logits = predict_logits(student, features, config.data.eval_batch_size)
    if spec.files:
        predictions.write_own(config.data.output_file, logits, spec.labels)
    else:
        predictions.write_glue(config.data.output_file, logits, spec.labels)
    print(f"Wrote {len(logits)} predictions to {config.data.output_file}"
          + (f" ({skipped} malformed rows skipped)." if skipped else "."))
    return 0
