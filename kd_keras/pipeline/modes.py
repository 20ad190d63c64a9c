"""What each --mode runs: the folder's identity is checked before anything is written,
then the rooms of the pipeline in turn."""

from __future__ import annotations

import time

from kd_keras import backends, files, folder_lock, models, run_identity, tokenization
from kd_keras import config as config_lib
from kd_keras.config import RunConfig
from kd_keras.pipeline import context as context_lib
from kd_keras.pipeline import (distillation, evaluation, inputs, report, serving, teacher,
                               transfer)


def run(config: RunConfig) -> int:
    """Runs the configured mode; returns the process exit code.

    Raises:
        DataError, ModelError, ExportError, TrainingDiverged, ValueError: a problem the
            user can fix; the message says how.
    """
    context = context_lib.start(config)
    # Before anything is written: a folder holding another run is never touched.
    run_identity.check(context.model_dir, run_identity.describe(config))
    if config.mode == "predict":  # reads the folder, writes elsewhere
        return _run(context)
    lock = folder_lock.FolderLock(context.model_dir).acquire()
    try:
        return _run(context)
    finally:
        lock.release()


def _run(context: context_lib.RunContext) -> int:
    """The configured mode, in a folder whose identity matches."""
    config = context.config
    mode = config.mode
    recorded_labels = run_identity.recorded(context.shared_dir).get("labels")
    task_inputs = inputs.TaskInputs(
        config, recorded_labels if mode in ("predict", "export") else None)
    spec = task_inputs.spec
    tokenizer = inputs.load_tokenizer(context, task_inputs)
    identity = run_identity.describe(config, tokenization.tokenizer_digest(tokenizer), spec.labels)
    if mode == "predict":
        run_identity.check(context.model_dir, identity)
        serving.predict(context, spec, tokenizer)
        return 0
    if mode == "export":
        run_identity.check(context.model_dir, identity)
        if not backends.current().EXPORTS_SAVED_MODEL:
            raise ValueError(f"--mode=export writes a TensorFlow SavedModel, which needs Keras' "
                             f"TensorFlow backend (this run is on {backends.name()}); "
                             "run it again with KERAS_BACKEND=tensorflow.")
        student = serving.load_student(context, spec)
        print("Exported", serving.export_student(context, spec, student, tokenizer,
                                                 config.train.export_version))
        return 0
    started = time.time()
    task = inputs.load_task_data(context, task_inputs, tokenizer)
    run_identity.record(context.model_dir, identity)
    config_lib.save(config, context.model_dir)
    if mode == "train_teacher":
        teacher.train(context, task)
        return 0
    teacher_model = teacher.ensure(context, task)
    results = {"task": spec.name, "schedule": config.distill.schedule,
               "skipped_rows": task.skipped}
    if spec.files:
        results["data"] = {"train_file": spec.files[0], "dev_file": spec.files[1],
                           "labels": list(spec.labels) if spec.labels else None}
    if mode == "evaluate":
        student = serving.load_student(context, spec)
    else:
        unlabelled = transfer.unlabelled_features(context, task_inputs, task, teacher_model)
        if unlabelled is not None:
            results["unlabelled_examples"] = len(unlabelled)
        student, fit_info = distillation.distill(context, task, teacher_model, unlabelled)
        results.update(stages=fit_info["stages"], best_epoch=fit_info["best_epoch"],
                       history=fit_info["history"], dev_history=fit_info["dev_history"])
        if mode == "distill":
            print(f"Best student saved to {context.path('student')}.")
    mapping = models.layer_mapping(teacher_model.num_layers, student.num_layers,
                                   config.model.layer_map)
    scores, dev_outputs = evaluation.evaluate(task, teacher_model, student, mapping,
                                              config.data.eval_batch_size,
                                              config.data.speed_seconds)
    results.update(scores)
    # Per-example dev outputs, for paired comparisons of runs (scripts/summarize_study.py).
    files.save_npz(context.path("dev_predictions.npz"), **dev_outputs)
    if mode == "pipeline" and backends.current().EXPORTS_SAVED_MODEL:
        results["export"] = serving.export_student(context, spec, student, tokenizer,
                                                   config.train.export_version)
    elif mode == "pipeline":
        print(f"Export skipped: a SavedModel needs Keras' TensorFlow backend; export this "
              f"student with KERAS_BACKEND=tensorflow python -m kd_keras.main --mode=export "
              f"--model_dir={context.shared_dir} (and this run's other flags).")
    results["wall_seconds"] = time.time() - started
    path = report.write_results(context.model_dir, results)
    print()
    print(report.results_table(results, spec.main_metric))
    print(f"\nResults: {path}")
    if "export" in results:
        print(f"Student SavedModel: {results['export']}")
    print(f"TensorBoard: tensorboard --logdir {context.path('logs')}")
    return 0
