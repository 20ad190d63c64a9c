"""test_resume.py's SIGKILL-mid-stage check on Keras' JAX backend: a run killed inside sid
stage 2 and rerun equals an uninterrupted run.  A file of its own, so that pytest-xdist
(which keeps a file's tests in one process) runs it beside the TensorFlow one."""

import importlib.util
import os

import pytest

from test_resume import SOURCES, check_sigkill_then_rerun

# Minutes of JAX compiling on a slow CPU: one of the long tests, KD_KERAS_LONG_TESTS=1 (CI
# keeps the TensorFlow check in test_resume.py and the JAX pipeline in
# test_jax_pipeline.py).
pytestmark = [pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                 reason="jax is not installed"),
              pytest.mark.skipif(not os.environ.get("KD_KERAS_LONG_TESTS"),
                                 reason="minutes of JAX compiling; KD_KERAS_LONG_TESTS=1 runs it")]


@pytest.mark.parametrize("source", SOURCES)
def test_sigkill_mid_sid_stage_on_jax_then_rerun_equals_uninterrupted(tmp_path, source):
    check_sigkill_then_rerun(tmp_path, source, "jax")
