"""Every flags/ preset parses with the current flags and validates into a run config."""

import glob
import os
import subprocess
import sys

import pytest

from test_end_to_end import REPO

PRESETS = sorted(glob.glob(os.path.join(REPO, "flags", "*.cfg")))

CHECK = """
import sys
from absl import flags
from kd_keras import flags as kd_flags, main
kd_flags.define_flags()
flags.FLAGS(["kd_keras", "--flagfile=" + sys.argv[1]])
config = main.config_from_flags()
print(config.data.task, config.distill.schedule)
"""


def test_there_are_presets():
    assert len(PRESETS) >= 4


@pytest.mark.parametrize("preset", PRESETS, ids=os.path.basename)
def test_preset_parses_into_a_valid_config(preset):
    result = subprocess.run([sys.executable, "-c", CHECK, preset], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    task, schedule = result.stdout.split()[-2:]
    name = os.path.basename(preset)[:-4]
    if name != "demo":
        assert name == f"{task}_{schedule}", (name, task, schedule)
