"""Command-line entry point: ``python -m kd_keras.main [--flagfile=flags/qqp_sid.cfg]``.

With no flags it runs the offline demo: a small teacher trained on the built-in
synthetic task, distilled with the stacked (sid) schedule into a student of half its
depth, evaluated and exported.  This is the only module that reads FLAGS.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time

import kd_keras  # noqa: F401  (before TensorFlow: selects Keras 2)
from absl import app, flags

from kd_keras import config as config_lib
from kd_keras.flags import define_flags

define_flags()
FLAGS = flags.FLAGS


# The tiny teacher starts from random weights: it needs larger steps and more epochs
# than the pretrained-BERT defaults.  These apply with --teacher=tiny unless the flag is
# given on the command line.
TINY_TEACHER_DEFAULTS = {"teacher_learning_rate": 1e-3, "learning_rate": 5e-4,
                         "teacher_epochs": 8, "epochs": 3}


def _teacher() -> str:
    """--teacher, defaulting to the tiny teacher for the synthetic task, MiniLM otherwise."""
    if FLAGS.teacher:
        return FLAGS.teacher
    return config_lib.TINY_TEACHER if FLAGS.task == "synthetic" else config_lib.MINILM_TEACHER


def _flag(name: str):
    """A flag's value, with the tiny-teacher default where it applies."""
    if (_teacher() == config_lib.TINY_TEACHER and name in TINY_TEACHER_DEFAULTS
            and not FLAGS[name].present):
        return TINY_TEACHER_DEFAULTS[name]
    return FLAGS[name].value


def config_from_flags() -> config_lib.RunConfig:
    """Builds and validates the run configuration from the parsed flags."""
    data_dir = FLAGS.data_dir or os.environ.get("GLUE_DIR") or None
    layer_map = tuple(int(v) for v in FLAGS.layer_map) if FLAGS.layer_map else None
    run = config_lib.RunConfig(
        mode=FLAGS.mode,
        data=config_lib.DataConfig(
            task=FLAGS.task, data_dir=data_dir, use_tfds=FLAGS.use_tfds,
            tfds_data_dir=FLAGS.tfds_data_dir, max_seq_length=FLAGS.max_seq_length,
            batch_size=FLAGS.batch_size, eval_batch_size=FLAGS.eval_batch_size,
            skip_bad_rows=FLAGS.skip_bad_rows, max_train_examples=FLAGS.max_train_examples,
            max_eval_examples=FLAGS.max_eval_examples, synthetic_size=FLAGS.synthetic_size),
        model=config_lib.ModelConfig(
            teacher=_teacher(), teacher_finetuned=FLAGS.teacher_finetuned,
            tiny_layers=FLAGS.tiny_layers, tiny_hidden_size=FLAGS.tiny_hidden_size,
            tiny_heads=FLAGS.tiny_heads, student=FLAGS.student,
            student_layers=FLAGS.student_layers,
            student_hidden_size=FLAGS.student_hidden_size, student_init=FLAGS.student_init,
            layer_map=layer_map),
        distill=config_lib.DistillConfig(
            schedule=FLAGS.schedule, epochs=_flag("epochs"),
            epochs_per_stage=FLAGS.epochs_per_stage, cos_threshold=FLAGS.cos_threshold,
            kd_every_stage=FLAGS.kd_every_stage,
            cache_teacher_logits=FLAGS.cache_teacher_logits, hard_label_weight=FLAGS.hard_label_weight,
            temperature=FLAGS.temperature, attention_weight=FLAGS.attention_weight,
            cosine_weight=FLAGS.cosine_weight),
        train=config_lib.TrainConfig(
            model_dir=FLAGS.model_dir, export_dir=FLAGS.export_dir, cache_dir=FLAGS.cache_dir,
            learning_rate=_flag("learning_rate"), teacher_learning_rate=_flag("teacher_learning_rate"),
            teacher_epochs=_flag("teacher_epochs"), warmup_proportion=FLAGS.warmup_proportion,
            weight_decay=FLAGS.weight_decay, seed=FLAGS.seed,
            distribution_strategy=FLAGS.distribution_strategy, num_gpus=FLAGS.num_gpus,
            tpu=FLAGS.tpu, checkpoint_steps=FLAGS.checkpoint_steps,
            early_stopping_patience=FLAGS.early_stopping_patience,
            mixed_precision=FLAGS.mixed_precision, xla=FLAGS.xla))
    return config_lib.validate(run)


def run(config: config_lib.RunConfig) -> int:
    """Runs the configured mode; returns the process exit code."""
    import tf_keras

    from kd_keras import pipeline
    from kd_keras.distribute import worker_folder

    strategy = pipeline.strategy_for(config)  # first: multi-worker needs a fresh context
    tf_keras.utils.set_random_seed(config.train.seed)
    if config.train.mixed_precision != "none":
        # Before any model is built: layers take the global policy when created.
        tf_keras.mixed_precision.set_global_policy(config.train.mixed_precision)
    shared_dir = config.train.model_dir
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, model_dir=worker_folder(shared_dir, strategy),
        backup_dir=os.path.join(shared_dir, "backup")))
    tokenizer = pipeline.load_tokenizer(config)
    mode = config.mode
    if mode == "export":
        student = _load_student(config, pipeline)
        print("Exported", pipeline.export_student_model(config, student, tokenizer,
                                                         FLAGS.export_version))
        return 0
    if mode == "predict":
        return _predict(config, pipeline, tokenizer)
    started = time.time()
    task = pipeline.load_task_data(config, tokenizer)
    config_lib.save(config, config.train.model_dir)
    if mode == "train_teacher":
        pipeline.train_teacher(config, task, strategy)
        return 0
    teacher = pipeline.ensure_teacher(config, task, strategy)
    results = {"task": task.spec.name, "schedule": config.distill.schedule,
               "skipped_rows": task.skipped}
    if mode == "evaluate":
        student = _load_student(config, pipeline)
    else:
        student, fit_info = pipeline.distill(config, task, teacher, strategy)
        results.update(stages=fit_info["stages"], best_epoch=fit_info["best_epoch"],
                       history=fit_info["history"], dev_history=fit_info["dev_history"])
        if mode == "distill":
            print(f"Best student saved to {os.path.join(config.train.model_dir, 'student')}.")
    results.update(pipeline.evaluate(config, task, teacher, student))
    if mode == "pipeline":
        results["export"] = pipeline.export_student_model(config, student, tokenizer,
                                                          FLAGS.export_version)
    results["wall_seconds"] = time.time() - started
    path = pipeline.write_results(config, results)
    print()
    print(pipeline.results_table(results, task.spec.main_metric))
    print(f"\nResults: {path}")
    if "export" in results:
        print(f"Student SavedModel: {results['export']}")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(config.train.model_dir, 'logs')}")
    return 0


def _load_student(config, pipeline):
    from kd_keras import models
    from kd_keras.tasks import get_task

    folder = os.path.join(config.train.model_dir, "student")
    if not os.path.isdir(folder):
        raise models.ModelError(f"No student in {folder}; run --mode=distill (or the "
                                "pipeline) with this --model_dir first.")
    return models.load_pretrained(folder, get_task(config.data.task).num_labels,
                                  pipeline.cache_dir(config))


def _predict(config, pipeline, tokenizer) -> int:
    from kd_keras import data
    from kd_keras.tasks import get_task

    if not FLAGS.predict_file or not FLAGS.output_file:
        raise ValueError("--mode=predict needs --predict_file and --output_file.")
    spec = get_task(config.data.task)
    student = _load_student(config, pipeline)
    examples, skipped = data.read_glue_tsv(FLAGS.predict_file, spec, config.data.skip_bad_rows)
    features = data.tokenize(examples, tokenizer, config.data.max_seq_length,
                             regression=spec.is_regression)
    logits = pipeline.predict_logits(student, features, config.data.eval_batch_size)
    tmp = FLAGS.output_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("index\tprediction\n")
        for i, row in enumerate(logits):
            value = f"{row[0]:.6f}" if spec.is_regression else spec.labels[int(row.argmax())]
            handle.write(f"{i}\t{value}\n")
    os.replace(tmp, FLAGS.output_file)
    print(f"Wrote {len(logits)} predictions to {FLAGS.output_file}"
          + (f" ({skipped} malformed rows skipped)." if skipped else "."))
    return 0


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from absl import logging

    from kd_keras.data import DataError
    from kd_keras.export import ExportError
    from kd_keras.models import ModelError
    from kd_keras.pipeline import TrainingDiverged

    logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown the progress output
    model_dir_existed = os.path.exists(FLAGS.model_dir)
    try:
        config = config_from_flags()
        code = run(config)
    except (DataError, ModelError, ExportError, TrainingDiverged, ValueError) as error:
        if not model_dir_existed:
            # This run made the folder and failed: leave nothing behind.  Folders that
            # already existed keep what earlier runs wrote.
            shutil.rmtree(FLAGS.model_dir, ignore_errors=True)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


if __name__ == "__main__":
    app.run(main)
