"""Runs ``python -m kd_keras.main`` with a full disk injected: the N-th ``np.savez`` into a
path holding TEXT raises OSError(ENOSPC), as a write to a full disk does.

    python tests/with_full_disk.py distill.previous.next:15 --task=synthetic ...

(distill.previous.next: the folder a distillation backup is written into.)
"""

import errno
import os
import runpy
import sys

import numpy as np

if __name__ == "__main__":
    text, count = sys.argv[1].rsplit(":", 1)
    calls = []
    savez = np.savez

    def savez_on_a_full_disk(file, *args, **kwargs):
        if text in str(file):
            calls.append(file)
            if len(calls) == int(count):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return savez(file, *args, **kwargs)

    np.savez = savez_on_a_full_disk
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.argv = ["kd_keras.main", *sys.argv[2:]]
    runpy.run_module("kd_keras.main", run_name="__main__", alter_sys=True)
