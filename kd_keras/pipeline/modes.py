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
        _recover(context)
        return _run(context)
    finally:
        lock.release()


def _recover(context: context_lib.RunContext) -> None:
    """Cleans up after a process killed inside a write in this folder (files.recover):
    the lock is held, so nothing there is being written.  Folders others may write (the
    other workers', a --cache_dir or --export_dir given) are left alone."""
    train = context.config.train
    others = [context.path("workers")] + [path for path in (train.cache_dir, train.export_dir)
                                          if path]
    for path in files.recover(context.model_dir, skip=others):
        print(f"Cleaned up after an interrupted write: {path}")


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
    if mode in ("pipeline", "export") and backends.current().EXPORTS_SAVED_MODEL:
        serving.check_text_signature(context, tokenizer)
    if mode == "predict":
        run_identity.check(context.model_dir, identity)
        serving.predict(context, spec, tokenizer)
        return 0
    if mode == "export":
        run_identity.check(context.model_dir, identity)
        if not backends.current().EXPORTS_SAVED_MODEL:
            raise ValueError(f"--mode=export converts the student with TensorFlow, which "
                             f"needs Keras' TensorFlow backend (this run is on "
                             f"{backends.name()}); run it again with "
                             "KERAS_BACKEND=tensorflow.")
        student = serving.load_student(context, spec)
        train = serving.calibration_text(context, task_inputs, tokenizer)
        folders = serving.export_student(
            context, serving.exportable(context, spec, student, tokenizer, train),
            config.train.export_version)
        for name, folder in folders.items():
            print(f"Exported {name}: {folder}")
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
        added = transfer.added_features(context, task_inputs, task, teacher_model)
        if added:
            results.update(transfer.counts(added))
        student, fit_info = distillation.distill(context, task, teacher_model, added)
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
        folders = serving.export_distilled(
            context, serving.exportable(context, spec, student, tokenizer, task.train))
        results["exports"] = folders
        results["export_scores"] = serving.score_exports(folders, task.dev, spec,
                                                         config.data.eval_batch_size)
    elif mode == "pipeline":
        print(f"Export skipped: the exports are written with TensorFlow, which needs Keras' "
              f"TensorFlow backend; export this student with KERAS_BACKEND=tensorflow "
              f"python -m kd_keras.main --mode=export --model_dir={context.shared_dir}.")
    results["wall_seconds"] = time.time() - started
    path = report.write_results(context.model_dir, results)
    print()
    print(report.results_table(results, spec.main_metric))
    print(f"\nResults: {path}")
    for name, folder in results.get("exports", {}).items():
        score = results["export_scores"].get(name)
        metric = (f" (dev {spec.main_metric} {score['dev'][spec.main_metric]:.4f} with its own "
                  "runtime)" if score else "")
        print(f"Student {name}: {folder}{metric}")
    print(f"TensorBoard: tensorboard --logdir {context.path('logs')}")
    return 0
