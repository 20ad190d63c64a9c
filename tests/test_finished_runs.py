"""A finished distillation is recorded with the settings that made it: the same command
again reuses its student, other settings distil anew, a damaged record is one error."""

import dataclasses
import json
import os

import pytest

from kd_keras import config as config_lib
from kd_keras.errors import UserError
from kd_keras.pipeline import distillation
from kd_keras.pipeline.context import RunContext


def context_for(folder, **distill):
    config = config_lib.RunConfig()
    config = dataclasses.replace(
        config, distill=dataclasses.replace(config.distill, **distill),
        train=dataclasses.replace(config.train, model_dir=str(folder)))
    return RunContext(config, None, str(folder), str(folder))


def write_record(context, fit):
    with open(context.path(distillation.RECORD), "w") as handle:
        json.dump({"settings": distillation.settings(context.config), "fit": fit}, handle)


def test_the_same_settings_find_the_finished_student(tmp_path, capsys):
    context = context_for(tmp_path)
    assert distillation.finished(context) is None  # nothing recorded yet
    write_record(context, {"stages": [1, 2]})
    assert distillation.finished(context) is None  # the student is gone
    os.makedirs(context.path("student"))
    assert distillation.finished(context)["fit"] == {"stages": [1, 2]}
    # Where the results go and how they are used do not make another student ...
    elsewhere = dataclasses.replace(context.config, mode="evaluate", train=dataclasses.replace(
        context.config.train, export_formats=("onnx",), export_version=7))
    assert distillation.finished(dataclasses.replace(context, config=elsewhere)) is not None
    # ... the method's settings do.
    assert distillation.finished(context_for(tmp_path, epochs=5, temperature=2.0)) is None
    assert ("Distilling again: --epochs, --temperature changed since the student in"
            in capsys.readouterr().out)


@pytest.mark.parametrize("damage", [b"{not json", b'{"settings": {}}', b"\xff\xfe"])
def test_a_damaged_record_is_one_error_naming_it(tmp_path, damage):
    context = context_for(tmp_path)
    os.makedirs(context.path("student"))
    with open(context.path(distillation.RECORD), "wb") as handle:
        handle.write(damage)
    with pytest.raises(UserError, match=r"distilled\.json is damaged"):
        distillation.finished(context)


def test_the_export_version_is_recorded_once_and_found_again(tmp_path):
    context = context_for(tmp_path)
    distillation.note_export(context, 3)  # no record (another worker): nothing written
    assert not os.path.exists(context.path(distillation.RECORD))
    write_record(context, {})
    assert distillation.recorded_export(context) is None
    distillation.note_export(context, 3)
    assert distillation.recorded_export(context) == 3
    other = dataclasses.replace(context.config, train=dataclasses.replace(
        context.config.train, export_version=4))
    assert distillation.recorded_export(dataclasses.replace(context, config=other)) is None


def test_a_setting_added_after_the_record_counts_as_its_default_there(tmp_path, capsys):
    """A folder distilled before --augment_labels existed is still finished; asking for
    source labels now distils again."""
    context = context_for(tmp_path)
    older = distillation.settings(context.config)
    del older["data.augment_labels"]
    with open(context.path(distillation.RECORD), "w") as handle:
        json.dump({"settings": older, "fit": {"stages": [1]}}, handle)
    os.makedirs(context.path("student"))
    assert distillation.finished(context)["fit"] == {"stages": [1]}
    source = dataclasses.replace(context.config, data=dataclasses.replace(
        context.config.data, augment=2, augment_labels="source"))
    assert distillation.finished(dataclasses.replace(context, config=source)) is None
    assert "--augment, --augment_labels changed" in capsys.readouterr().out
