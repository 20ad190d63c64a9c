"""Every flags/ preset parses with the current flags and validates into a run config; the
demo runs with what --helpfull and the tiny-teacher preset say."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

from kd_keras import flags as kd_flags
from test_end_to_end import REPO

PRESETS = sorted(glob.glob(os.path.join(REPO, "flags", "*.cfg")))

# Every preset parsed in one process (TensorFlow imported once), each from fresh flags.
CHECK = """
import json, sys
from absl import flags
from kd_keras import flags as kd_flags, main
kd_flags.define_flags()
found = {}
for preset in sys.argv[1:]:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["kd_keras", "--flagfile=" + preset])
    config = main.config_from_flags()
    found[preset] = [config.data.task, config.distill.schedule, config.data.augment]
print(json.dumps(found))
"""


def test_there_are_presets():
    assert len(PRESETS) >= 4


@pytest.fixture(scope="module")
def parsed():
    """preset path -> (task, schedule, augmented copies) of the config it validates
    into."""
    result = subprocess.run([sys.executable, "-c", CHECK, *PRESETS], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("preset", PRESETS, ids=os.path.basename)
def test_preset_parses_into_a_valid_config(preset, parsed):
    task, schedule, augment = parsed[preset]
    name = os.path.basename(preset)[:-4]
    if name != "demo":  # <task>_<schedule>, and _aug where the preset adds copies
        assert name == f"{task}_{schedule}" + ("_aug" if augment else ""), (name, task,
                                                                             schedule, augment)


# ---------------------------------------------------------------- the demo's defaults


def helpfull():
    """What ``--helpfull`` says of each kd_keras flag: name -> (default as printed, or
    None where it prints none; the --teacher=tiny value it names, or None)."""
    env = {k: v for k, v in os.environ.items() if k != "GLUE_DIR"}
    text = subprocess.run([sys.executable, "-m", "kd_keras.main", "--helpfull"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env).stdout
    section = text.split("kd_keras.flags:\n", 1)[1]
    section = section[: re.search(r"^\S", section, re.M).start()]
    found = {}
    for entry in re.split(r"^  (?=--)", section, flags=re.M)[1:]:
        name = re.match(r"--(?:\[no\])?(\w+):", entry).group(1)
        default = re.search(r"\(default: '([^']*)'\)", entry)
        tiny = re.search(r"With --teacher=tiny: (\S+) unless given", " ".join(entry.split()))
        found[name] = (default.group(1) if default else None, tiny.group(1) if tiny else None)
    return found


def said(text, value) -> bool:
    """Whether a flag value as --helpfull prints it is the config's value."""
    if isinstance(value, tuple):
        return (text or "") == ",".join(value)
    if value is None or isinstance(value, (bool, str)):
        return text == (str(value).lower() if isinstance(value, bool) else value)
    return text is not None and float(text) == value


CONFIG_OF = """
import sys
from absl import flags
from kd_keras import flags as kd_flags, main
flags.FLAGS(["kd_keras"] + sys.argv[1:])
print(main.config_from_flags().to_json())
"""


def config_of(*args):
    env = {k: v for k, v in os.environ.items() if k != "GLUE_DIR"}
    result = subprocess.run([sys.executable, "-c", CONFIG_OF, *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout[result.stdout.index("{"):])


def settings(config):
    """name -> value of every section field of a config.json dict (lists as tuples)."""
    return {name: tuple(value) if isinstance(value, list) else value
            for section in ("data", "model", "distill", "train")
            for name, value in config[section].items()}


def check_against_help(saved, given=()):
    """Every setting of a saved config is what --helpfull says: the flag's default, or
    with --teacher=tiny the preset's value; flags in ``given`` are skipped."""
    help_says = helpfull()
    tiny = saved["model"]["teacher"] == "tiny"
    # Derived from other flags: the teacher by task, the folder by task and schedule.
    derived = {"teacher", "model_dir"}
    wrong = {}
    for name, value in settings(saved).items():
        if name in help_says and name not in derived and name not in given:
            default, preset = help_says[name]
            expected = preset if tiny and preset is not None else default
            if not said(expected, value):
                wrong[name] = (expected, value)
    assert not wrong, wrong
    return help_says


def test_the_demo_runs_what_help_and_the_tiny_preset_say():
    """`python -m kd_keras.main` alone: every setting is --helpfull's default, except the
    four the tiny-teacher preset sets, which --helpfull names too; flags/demo.cfg spells
    out the same run."""
    demo = config_of()
    help_says = check_against_help(demo)
    preset = kd_flags.read_preset(kd_flags.TINY_TEACHER_PRESET)
    assert {name for name, (_, tiny) in help_says.items() if tiny} == set(preset)
    assert demo["model"]["teacher"] == "tiny" and demo["train"]["learning_rate"] == 5e-4
    assert settings(config_of(f"--flagfile={os.path.join(REPO, 'flags', 'demo.cfg')}")) \
        == settings(demo)
    # A flag given wins over the preset; without --teacher=tiny the preset is off.
    assert config_of("--learning_rate=2e-4")["train"]["learning_rate"] == 2e-4
    check_against_help(config_of("--teacher=/some/folder"))
