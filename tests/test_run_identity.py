"""A model_dir holds one run: identities, default folders, and one source of defaults."""

import dataclasses
import json

import pytest

from kd_keras import config as config_lib
from kd_keras import run_identity
from kd_keras.run_identity import RunMismatch


def run_config(mode="pipeline", **parts):
    """A RunConfig with fields replaced per part, e.g. data=dict(task="mrpc")."""
    base = config_lib.RunConfig(mode=mode)
    return dataclasses.replace(base, **{
        name: dataclasses.replace(getattr(base, name), **fields)
        for name, fields in parts.items()})


def test_same_run_matches_and_another_is_refused_naming_what_differs(tmp_path):
    folder = str(tmp_path)
    demo = run_identity.describe(run_config(), "digest-a", ["no", "yes"])
    run_identity.record(folder, demo)
    run_identity.check(folder, demo)  # the same command again: fine
    glue = run_identity.describe(run_config(data=dict(task="mrpc"),
                                            model=dict(teacher="minilm")))
    with pytest.raises(RunMismatch) as error:
        run_identity.check(folder, glue)
    message = str(error.value)
    assert message.startswith(f"--model_dir={folder} holds another run (data: ")
    assert '"task": "synthetic"} there' in message and '"minilm" now' in message
    assert "schedule:" not in message and "\n" not in message
    for changed in (dict(model=dict(tiny_layers=2)), dict(model=dict(student_layers=1)),
                    dict(distill=dict(schedule="kd"))):
        with pytest.raises(RunMismatch):
            run_identity.check(folder, run_identity.describe(run_config(**changed)))
    with pytest.raises(RunMismatch, match="tokenizer"):
        run_identity.check(folder, run_identity.describe(run_config(), "digest-b"))
    with pytest.raises(RunMismatch, match="labels"):
        run_identity.check(folder, run_identity.describe(run_config(), labels=["a", "b"]))


def test_a_teacher_only_run_and_a_later_distillation_share_a_folder(tmp_path):
    folder = str(tmp_path)
    teacher_only = run_identity.describe(run_config("train_teacher", data=dict(task="rte"),
                                                    model=dict(teacher="minilm")))
    assert "student" not in teacher_only and "schedule" not in teacher_only
    run_identity.record(folder, teacher_only)
    distill = run_identity.describe(run_config("distill", data=dict(task="rte"),
                                               model=dict(teacher="minilm")))
    run_identity.record(folder, distill)  # adds the student part
    assert run_identity.recorded(folder)["schedule"] == "sid"
    # Export and predict read the student whatever its schedule was: not compared.
    run_identity.check(folder, run_identity.describe(run_config(
        "export", data=dict(task="rte"), model=dict(teacher="minilm"),
        distill=dict(schedule="kd"))))


def test_folders_written_before_identities_are_judged_by_their_config(tmp_path):
    old = run_config()  # what the demo wrote into /tmp/kd_keras_demo before this change
    stored = json.loads(old.to_json())
    del stored["data"]["train_file"]  # an older config.json lacks the new fields
    (tmp_path / "config.json").write_text(json.dumps(stored))
    run_identity.check(str(tmp_path), run_identity.describe(old))
    with pytest.raises(RunMismatch, match="teacher"):
        run_identity.check(str(tmp_path), run_identity.describe(
            run_config(data=dict(task="mrpc"), model=dict(teacher="minilm"))))


def test_local_teacher_folders_are_compared_by_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "teacher").mkdir()
    monkeypatch.chdir(tmp_path)
    relative = run_identity.describe(run_config(model=dict(teacher="teacher")))
    absolute = run_identity.describe(run_config(model=dict(teacher=str(tmp_path / "teacher"))))
    assert relative["teacher"] == absolute["teacher"] == str(tmp_path / "teacher")


def test_default_folders_differ_by_task_and_schedule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def folder(schedule="sid", **data):
        return config_lib.default_model_dir(config_lib.DataConfig(**data), schedule)

    assert folder() == "/tmp/kd_keras_demo"  # README's demo folder
    assert folder("kd") == "/tmp/kd_keras_demo_kd"
    assert folder(task="qqp") == str(tmp_path / "runs" / "qqp_sid")
    assert folder("kd", task="MRPC") == str(tmp_path / "runs" / "mrpc_kd")
    own = folder(task="custom", train_file="data/reviews/train.csv")
    assert own == str(tmp_path / "runs" / "reviews-train_sid")
    names = {folder(), folder("kd"), folder(task="qqp"), folder(task="mrpc"),
             folder("kd", task="mrpc"), own}
    assert len(names) == 6


def test_every_flag_default_is_the_config_default():
    from absl import flags

    from kd_keras import flags as kd_flags

    kd_flags.define_flags()
    derived = {"teacher"}  # tiny for the synthetic task, minilm otherwise (main._teacher)

    def same_form(value):  # list flags hold lists, the config tuples; empty means unset
        return (list(value) or None) if isinstance(value, (list, tuple)) else value

    differ = []
    for part in (config_lib.DataConfig(), config_lib.ModelConfig(),
                 config_lib.DistillConfig(), config_lib.TrainConfig()):
        for field in dataclasses.fields(part):
            if field.name in flags.FLAGS and field.name not in derived:
                flag_default = same_form(flags.FLAGS[field.name].default)
                value = same_form(getattr(part, field.name))
                if flag_default != value:
                    differ.append((field.name, flag_default, value))
    assert not differ
    assert flags.FLAGS["mode"].default == config_lib.RunConfig().mode
    # Every setting has its flag with the field's help text, and no flag lacks a setting.
    settings = {field.name: field for _, field in config_lib.flag_fields()}
    for name, field in settings.items():
        assert field.metadata["help"] and field.metadata["help"] in flags.FLAGS[name].help
    ours = {name for name, flag in flags.FLAGS.__flags.items()
            if flags.FLAGS.find_module_defining_flag(name) == "kd_keras.flags"}
    assert ours == set(settings)


def test_own_data_settings_are_checked(tmp_path):
    def own(**fields):
        data = dict(task="custom", train_file="t.csv", dev_file="d.csv",
                    text_fields=("text",), label_field="label")
        data.update(fields)
        return config_lib.validate(run_config(data=data, train=dict(model_dir=str(tmp_path))))

    own()
    with pytest.raises(ValueError, match="--dev_file"):
        own(dev_file=None)
    with pytest.raises(ValueError, match="--text_fields"):
        own(text_fields=("a", "b", "c"))
    with pytest.raises(ValueError, match="--label_field"):
        own(label_field=None)
    with pytest.raises(ValueError, match="--label_field 'text' is also a text field"):
        own(label_field="text")
    with pytest.raises(ValueError, match="--text_fields"):
        own(text_fields=("text", ""))
    with pytest.raises(ValueError, match="either --task"):
        own(task="mrpc")
    with pytest.raises(ValueError, match="Unknown --task_type 'ranking'"):
        own(task_type="ranking")
