"""Runs a module as ``python -m`` does, with TensorFlow and its companions unimportable,
as on a machine that has only Keras and JAX:

    python tests/without_tensorflow.py kd_keras.main --task=synthetic ...
    python tests/without_tensorflow.py scripts/bench_jax.py --size=tiny ...   (a script)
"""

import os
import runpy
import sys

BLOCKED = ("tensorflow", "tensorflow_text", "tensorflow_datasets", "tf_keras")

if __name__ == "__main__":
    for name in BLOCKED:
        sys.modules[name] = None  # "import tensorflow" now raises ImportError
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    if module.endswith(".py"):
        runpy.run_path(module, run_name="__main__")
    else:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    raise SystemExit(0)
