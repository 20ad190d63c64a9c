"""Runs several ``python -m kd_keras.main`` command lines one after another in this one
process, each with its own parsed flags, stdout and stderr, and writes what each gave
(exit code, stdout, stderr) as JSON: tests/test_cli_errors.py checks many bad inputs
without paying TensorFlow's import (seconds) once per case.

    python tests/cli_batch.py cases.json results.json   # cases: a list of argument lists
"""

import contextlib
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import flags  # noqa: E402

from kd_keras import main as cli  # noqa: E402


def run(arguments):
    """What ``python -m kd_keras.main *arguments`` gives: exit code, stdout, stderr."""
    flags.FLAGS.unparse_flags()  # every flag back to its default
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            flags.FLAGS(["kd_keras.main", *arguments])
            cli.main(["kd_keras.main"])
        except SystemExit as exit:
            code = exit.code
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        cases = json.load(handle)
    results = [run(arguments) for arguments in cases]
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump(results, handle)
