"""Command-line flags, generated from the config dataclasses (main.py is the only reader).

Each flag has its field's name, default and help text (config.option), so flags and
configuration cannot drift apart.  Only the teacher's default is decided later, by task
(main.py).
"""

from absl import flags

from kd_keras import config

# Flags whose default depends on other flags (resolved in main.config_from_flags).
DERIVED = {"teacher": None}


def _define(field) -> None:
    name, help_text = field.name, field.metadata["help"]
    default = DERIVED.get(name, field.default)
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
