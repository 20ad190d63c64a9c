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
from kd_keras.tasks import OWN_DATA_TASK

define_flags()
FLAGS = flags.FLAGS


# The tiny teacher starts from random weights: it needs larger steps and more epochs
# than the pretrained-BERT defaults.  These apply with --teacher=tiny unless the flag is
# given on the command line.
TINY_TEACHER_DEFAULTS = {"teacher_learning_rate": 1e-3, "learning_rate": 5e-4,
                         "teacher_epochs": 8, "epochs": 3}


def _task() -> str:
    """--task, or the own-data task when --train_file is given."""
    if not FLAGS.train_file:
        return FLAGS.task
    if FLAGS["task"].present:
        raise ValueError("Pass either --task (a GLUE task) or --train_file (your own data), "
                         "not both.")
    return OWN_DATA_TASK


def _teacher() -> str:
    """--teacher, defaulting to the tiny teacher for the synthetic task, MiniLM otherwise."""
    if FLAGS.teacher:
        return FLAGS.teacher
    return config_lib.TINY_TEACHER if _task() == "synthetic" else config_lib.MINILM_TEACHER


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
    data = config_lib.DataConfig(
        task=_task(), data_dir=data_dir, use_tfds=FLAGS.use_tfds,
        tfds_data_dir=FLAGS.tfds_data_dir, max_seq_length=FLAGS.max_seq_length,
        batch_size=FLAGS.batch_size, eval_batch_size=FLAGS.eval_batch_size,
        skip_bad_rows=FLAGS.skip_bad_rows, max_train_examples=FLAGS.max_train_examples,
        max_eval_examples=FLAGS.max_eval_examples, synthetic_size=FLAGS.synthetic_size,
        train_file=FLAGS.train_file, dev_file=FLAGS.dev_file,
        text_fields=tuple(f.strip() for f in FLAGS.text_fields or ()),
        label_field=FLAGS.label_field, task_type=FLAGS.task_type)
    model_dir = FLAGS.model_dir or config_lib.default_model_dir(data, FLAGS.schedule)
    run = config_lib.RunConfig(
        mode=FLAGS.mode,
        data=data,
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
            model_dir=model_dir, export_dir=FLAGS.export_dir, cache_dir=FLAGS.cache_dir,
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

    from kd_keras import models, pipeline, run_identity
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
    model_dir = config.train.model_dir
    # Before anything is written: a folder holding another run is never touched.
    run_identity.check(model_dir, run_identity.describe(config))
    mode = config.mode
    recorded_labels = run_identity.recorded(model_dir).get("labels")
    spec = pipeline.task_spec(config, recorded_labels if mode in ("predict", "export")
                              else None)
    tokenizer = pipeline.load_tokenizer(config, spec)
    identity = run_identity.describe(config, models.tokenizer_digest(tokenizer), spec.labels)
    if mode in ("export", "predict"):
        run_identity.check(model_dir, identity)
        if mode == "predict":
            return _predict(config, spec, pipeline, tokenizer)
        student = _load_student(config, spec, pipeline)
        print("Exported", pipeline.export_student_model(config, spec, student, tokenizer,
                                                         FLAGS.export_version))
        return 0
    started = time.time()
    task = pipeline.load_task_data(config, tokenizer, spec)
    run_identity.record(model_dir, identity)
    config_lib.save(config, model_dir)
    if mode == "train_teacher":
        pipeline.train_teacher(config, task, strategy)
        return 0
    teacher = pipeline.ensure_teacher(config, task, strategy)
    results = {"task": spec.name, "schedule": config.distill.schedule,
               "skipped_rows": task.skipped}
    if spec.files:
        results["data"] = {"train_file": spec.files[0], "dev_file": spec.files[1],
                           "labels": list(spec.labels) if spec.labels else None}
    if mode == "evaluate":
        student = _load_student(config, spec, pipeline)
    else:
        student, fit_info = pipeline.distill(config, task, teacher, strategy)
        results.update(stages=fit_info["stages"], best_epoch=fit_info["best_epoch"],
                       history=fit_info["history"], dev_history=fit_info["dev_history"])
        if mode == "distill":
            print(f"Best student saved to {os.path.join(model_dir, 'student')}.")
    results.update(pipeline.evaluate(config, task, teacher, student))
    if mode == "pipeline":
        results["export"] = pipeline.export_student_model(config, spec, student, tokenizer,
                                                          FLAGS.export_version)
    results["wall_seconds"] = time.time() - started
    path = pipeline.write_results(config, results)
    print()
    print(pipeline.results_table(results, spec.main_metric))
    print(f"\nResults: {path}")
    if "export" in results:
        print(f"Student SavedModel: {results['export']}")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(model_dir, 'logs')}")
    return 0


def _load_student(config, spec, pipeline):
    from kd_keras import models

    folder = os.path.join(config.train.model_dir, "student")
    if not os.path.isdir(folder):
        raise models.ModelError(f"No student in {folder}; run --mode=distill (or the "
                                "pipeline) with this --model_dir first.")
    return models.load_pretrained(folder, spec.num_labels, pipeline.cache_dir(config))


def _predict(config, spec, pipeline, tokenizer) -> int:
    from kd_keras import data, predictions

    if not FLAGS.predict_file or not FLAGS.output_file:
        raise ValueError("--mode=predict needs --predict_file and --output_file.")
    if spec.files:
        predictions.check_output_format(FLAGS.output_file)
        rows, skipped = data.read_own_rows(FLAGS.predict_file, spec.text_fields, None,
                                           config.data.skip_bad_rows)
        examples = [data.Example(r.text_a, r.text_b, 0) for r in rows]
    else:
        examples, skipped = data.read_glue_tsv(FLAGS.predict_file, spec,
                                               config.data.skip_bad_rows)
    if not examples:
        raise data.DataError(f"{FLAGS.predict_file} has no rows to predict.")
    student = _load_student(config, spec, pipeline)
    features = data.tokenize(examples, tokenizer, config.data.max_seq_length,
                             regression=spec.is_regression)
    logits = pipeline.predict_logits(student, features, config.data.eval_batch_size)
    if spec.files:
        predictions.write_own(FLAGS.output_file, logits, spec.labels)
    else:
        predictions.write_glue(FLAGS.output_file, logits, spec.labels)
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
    user_errors = (DataError, ModelError, ExportError, TrainingDiverged, ValueError)
    try:
        config = config_from_flags()
    except user_errors as error:
        _fail(error)
    model_dir = config.train.model_dir
    model_dir_existed = os.path.exists(model_dir)
    try:
        code = run(config)
    except user_errors as error:
        if not model_dir_existed:
            # This run made the folder and failed: leave nothing behind.  Folders that
            # already existed keep what earlier runs wrote.
            shutil.rmtree(model_dir, ignore_errors=True)
        _fail(error)
    sys.exit(code)


def _fail(error: Exception) -> None:
    """One line on stderr and exit code 2: the user can fix this."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main)
