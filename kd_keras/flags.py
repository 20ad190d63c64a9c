"""Command-line flags, generated from the config dataclasses (main.py is the only reader).

Each flag has its field's name, default and help text (config.option), so flags and
configuration cannot drift apart.  Two defaults depend on other flags, and --help says
how: the teacher's, by task (main.py), and those of the tiny-teacher preset
(presets/tiny_teacher.cfg), which apply with --teacher=tiny to the flags not given.
"""

import os
from typing import Dict

from absl import flags

from kd_keras import config

# Flags whose default depends on other flags (resolved in main.config_from_flags).
DERIVED = {"teacher": None}
PRESETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
TINY_TEACHER_PRESET = os.path.join(PRESETS, "tiny_teacher.cfg")


def read_preset(path: str) -> Dict[str, str]:
    """A flag file's settings: flag name -> value as written (``--name=value`` lines;
    ``#`` comments and blank lines skipped)."""
    found = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.lstrip("-").partition("=")
                found[name] = value
    return found


def _define(field) -> None:
    name, help_text = field.name, field.metadata["help"]
    default = DERIVED.get(name, field.default)
    tiny = read_preset(TINY_TEACHER_PRESET)
    if name in tiny:
        help_text += (f" With --teacher=tiny: {tiny[name]} unless given "
                      f"(kd_keras/presets/{os.path.basename(TINY_TEACHER_PRESET)}).")
    kind = str(field.type)
    if field.metadata.get("choices"):
        flags.DEFINE_enum(name, default, list(field.metadata["choices"]), help_text)
    elif kind == "bool":
        flags.DEFINE_bool(name, default, help_text)
    elif kind in ("int", "Optional[int]"):
        flags.DEFINE_integer(name, default, help_text)
    elif kind == "float":
        flags.DEFINE_float(name, default, help_text)
    elif "Tuple" in kind:
        flags.DEFINE_list(name, list(default) if default else None, help_text)
    elif kind in ("str", "Optional[str]"):
        flags.DEFINE_string(name, default, help_text)
    else:
        raise TypeError(f"config field {name} has type {kind}, which no flag kind takes.")


def define_flags() -> None:
    """Registers every flag once."""
    if "task" in flags.FLAGS:
        return
    for _, field in config.flag_fields():
        _define(field)
