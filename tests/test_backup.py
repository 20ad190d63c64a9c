"""Two backups (#29, item 2): a damaged backup is passed over for the one before it, the
run resumes from there; none readable is one error; a finished run leaves neither."""

import os

import keras
import numpy as np
import pytest

from kd_keras import backup
from kd_keras.distribute import SingleProcess
from kd_keras.errors import UserError
from test_damaged_files import flip, truncate


class Model:
    """What TrainingBackup reads and writes of a Distiller."""

    def __init__(self):
        self.variables_ = [keras.Variable(np.zeros((3, 2), np.float32)),
                           keras.Variable(np.zeros((4,), np.float32))]
        self.run_state = {}
        self.metrics = []  # no running means to carry over

    def backup_variables(self):
        return self.variables_

    def get_run_state(self):
        return dict(self.run_state)

    def set_run_state(self, state):
        self.run_state = dict(state)


def saved(tmp_path):
    """A backup folder with two backups: values 1 at (epoch 0, batch 3), then 2 at (0, 6)."""
    folder = str(tmp_path / "backup" / "distill")
    model = Model()
    writer = backup.TrainingBackup(folder, steps_per_epoch=10)
    writer.set_model(model)
    for value, batch in ((1.0, 3), (2.0, 6)):
        for variable in model.variables_:
            variable.assign(np.full(variable.shape, value, np.float32))
        model.run_state = {"best": value}
        writer.save(0, batch)
    return folder


def restored(folder):
    model = Model()
    reader = backup.TrainingBackup(folder, steps_per_epoch=10)
    reader.set_model(model)
    assert reader.restore()
    return float(model.variables_[0].numpy()[0, 0]), model.run_state, reader.position()


def test_the_newest_backup_is_restored_and_the_one_before_kept(tmp_path):
    folder = saved(tmp_path)
    assert os.path.isdir(folder + backup.PREVIOUS)
    assert restored(folder) == (2.0, {"best": 2.0}, (0, 6))


@pytest.mark.parametrize("name, damage", [("variables.npz", flip), ("variables.npz", truncate),
                                          ("state.json", truncate)])
def test_a_damaged_backup_falls_back_to_the_one_before(tmp_path, capsys, name, damage):
    folder = saved(tmp_path)
    damage(os.path.join(folder, name))
    assert restored(folder) == (1.0, {"best": 1.0}, (0, 3))
    assert "is damaged; resuming from the previous backup" in capsys.readouterr().out


def test_killed_between_the_renames_the_last_whole_backup_is_used(tmp_path):
    folder = saved(tmp_path)
    os.rename(folder, folder + backup.PREVIOUS + ".next")  # the new one not yet in place
    assert restored(folder)[0] == 1.0


def test_no_readable_backup_is_one_error_and_a_finished_run_leaves_none(tmp_path):
    folder = saved(tmp_path)
    for suffix in ("", backup.PREVIOUS):
        flip(os.path.join(folder + suffix, "variables.npz"), where=0.8)
    with pytest.raises(UserError, match="Every backup is damaged") as raised:
        restored(folder)
    assert "\n" not in str(raised.value)
    backup.remove(str(tmp_path / "backup"), "distill", SingleProcess())
    assert not os.path.exists(str(tmp_path / "backup"))
