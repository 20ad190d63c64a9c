"""Command-line entry point: ``python -m kd_keras.main [--flagfile=flags/qqp_sid.cfg]``.

With no flags it runs the offline demo: a small teacher trained on the built-in
synthetic task, distilled with the stacked (sid) schedule into a student of half its
depth, evaluated and exported.  This is the only module that reads FLAGS: it builds the
RunConfig, calls pipeline.modes.run, and turns the errors a user can fix into one line and
exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys

# The command line's own process: hide TensorFlow's INFO chatter (oneDNN, CUDA probing)
# before TensorFlow loads; warnings and errors still show.  The library sets nothing.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from kd_keras import config as config_lib  # noqa: E402
from kd_keras import files  # noqa: E402
from kd_keras import flags as kd_flags  # noqa: E402
from kd_keras.hub import MINILM  # noqa: E402
from kd_keras.tasks import OWN_DATA_TASK  # noqa: E402

kd_flags.define_flags()
FLAGS = flags.FLAGS

# Modes that use what a finished run left: in a folder holding one, they take its settings.
USE_A_FINISHED_RUN = ("predict", "evaluate", "export")


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
    return config_lib.TINY_TEACHER if _task() == "synthetic" else MINILM


def _preset() -> dict:
    """The tiny-teacher preset's values of the flags not given, with --teacher=tiny."""
    if _teacher() != config_lib.TINY_TEACHER:
        return {}
    return {name: FLAGS[name].parser.parse(value)
            for name, value in kd_flags.read_preset(kd_flags.TINY_TEACHER_PRESET).items()
            if not FLAGS[name].present}


def _layer_map():
    if not FLAGS.layer_map:
        return None
    try:
        return tuple(int(value) for value in FLAGS.layer_map)
    except ValueError:
        raise ValueError("--layer_map takes teacher layer numbers, e.g. --layer_map=2,4,6; "
                         f"got {','.join(FLAGS.layer_map)}.") from None


def config_from_flags() -> config_lib.RunConfig:
    """Builds and validates the run configuration from the parsed flags."""
    sections = {name: {} for name in config_lib.SECTIONS}
    preset = _preset()
    for section, field in config_lib.flag_fields():
        if section is not None:
            value = preset.get(field.name, FLAGS[field.name].value)
            sections[section][field.name] = tuple(value) if isinstance(value, list) else value
    sections["data"].update(
        task=_task(), data_dir=FLAGS.data_dir or os.environ.get("GLUE_DIR") or None,
        text_fields=tuple(name.strip() for name in FLAGS.text_fields or ()))
    sections["model"].update(teacher=_teacher(), layer_map=_layer_map())
    data = config_lib.DataConfig(**sections["data"])
    sections["train"]["model_dir"] = (FLAGS.model_dir
                                      or config_lib.default_model_dir(data, FLAGS.schedule))
    run = config_lib.RunConfig(
        mode=FLAGS.mode, data=data, model=config_lib.ModelConfig(**sections["model"]),
        distill=config_lib.DistillConfig(**sections["distill"]),
        train=config_lib.TrainConfig(**sections["train"]))
    return config_lib.validate(_on_a_finished_run(run))


def _finished_run_record(run: config_lib.RunConfig):
    """The config.json of the finished run this command uses (--mode=predict|evaluate|
    export on a folder that holds one), or None."""
    path = os.path.join(run.train.model_dir, "config.json")
    return path if run.mode in USE_A_FINISHED_RUN and os.path.exists(path) else None


def _on_a_finished_run(run: config_lib.RunConfig) -> config_lib.RunConfig:
    """--mode=predict|evaluate|export on a folder that holds a run: the data, models and
    method it recorded (config.json), with the flags given on this command line on top;
    how this command runs (strategy, precision, folders) is this command's.

    So ``--mode=predict --model_dir=M --predict_file=... --output_file=...`` is enough.  A
    given flag that says what the run is (its data, teacher, student...) and differs
    from the record is refused by the folder's identity check (pipeline.modes), which
    names both values; one that repeats the record changes nothing.
    """
    path = _finished_run_record(run)
    if path is None:
        return run
    recorded = files.read_record(path, config_lib.from_json)
    given = {field.name for _, field in config_lib.flag_fields() if FLAGS[field.name].present}
    if FLAGS["train_file"].present:
        given.add("task")  # the own-data task, derived from --train_file
    sections = {}
    for name in ("data", "model", "distill"):
        ours = getattr(run, name)
        sections[name] = dataclasses.replace(getattr(recorded, name), **{
            field.name: getattr(ours, field.name) for field in dataclasses.fields(ours)
            if field.name in given})
    return config_lib.RunConfig(mode=run.mode, train=run.train, **sections)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from absl import logging

    from kd_keras.errors import DiskFull, Preempted
    from kd_keras.pipeline import modes

    logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown the progress output
    if os.environ.get("KD_KERAS_TRACEBACK") == "1":
        import keras

        keras.config.disable_traceback_filtering()
    # What a user can fix: kd_keras.errors.UserError (data, models, a folder holding
    # another run, exports, a diverged loss) and the settings' checks, all ValueErrors.
    user_errors = (ValueError,)
    try:
        config = config_from_flags()
    except user_errors as error:
        _fail(error)
    written = kd_flags.read_preset(kd_flags.TINY_TEACHER_PRESET)
    applied = [f"--{name}={written[name]}" for name in _preset()]
    if applied and _finished_run_record(config) is None:  # else the run's own settings
        print(f"--teacher=tiny presets {' '.join(applied)} (kd_keras/presets/"
              "tiny_teacher.cfg; a flag you give wins).")
    model_dir = config.train.model_dir
    model_dir_existed = os.path.exists(model_dir)
    try:
        code = modes.run(config)
    except Preempted as stopped:  # the folder holds the backup to resume from
        print(f"stopped: {stopped}", file=sys.stderr)
        sys.exit(75)
    except (DiskFull, OSError) as error:  # the folder keeps its backups to resume from
        if isinstance(error, DiskFull):
            _fail(error)
        if error.errno not in files.NO_SPACE:
            raise
        _fail(files.disk_full(error.filename or model_dir))
    except user_errors as error:
        if not model_dir_existed:
            # This run made the folder and failed: leave nothing behind.  Folders that
            # already existed keep what earlier runs wrote.
            shutil.rmtree(model_dir, ignore_errors=True)
        _fail(error)
    sys.exit(code)


def _fail(error: Exception) -> None:
    """One line on stderr and exit code 2: the user can fix this.  With
    KD_KERAS_TRACEBACK=1 the traceback is printed before it (for reports of a bug)."""
    if os.environ.get("KD_KERAS_TRACEBACK") == "1":
        import traceback

        traceback.print_exception(error)
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main)
