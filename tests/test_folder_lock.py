"""Two runs, one folder (issue #29, item 4): the second is refused at once, naming the
holder; a lock whose holder was killed is taken over."""

import os
import signal
import subprocess
import sys
import time

import pytest

from kd_keras import folder_lock
from test_end_to_end import REPO, run_cli

HOLD = """
import sys, time
from kd_keras import folder_lock
folder_lock.FolderLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path):
    first = folder_lock.FolderLock(str(tmp_path)).acquire()
    with pytest.raises(folder_lock.FolderInUse, match=f"pid {os.getpid()} on host"):
        folder_lock.FolderLock(str(tmp_path)).acquire()
    first.release()
    assert not os.path.exists(tmp_path / folder_lock.HOLDER_FILE)
    folder_lock.FolderLock(str(tmp_path)).acquire().release()


def test_a_run_on_a_folder_in_use_is_refused_and_a_killed_holders_folder_taken_over(tmp_path):
    model_dir = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, model_dir], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        flags = ["--teacher=tiny", "--tiny_layers=2", "--tiny_hidden_size=32",
                 "--tiny_heads=2", "--teacher_epochs=1", "--synthetic_size=64",
                 "--max_seq_length=16", "--mode=train_teacher", f"--model_dir={model_dir}"]
        started = time.time()
        refused = run_cli(*flags, check=False)
        assert refused.returncode == 2 and time.time() - started < 60
        assert f"is in use by another run (pid {holder.pid} on host" in refused.stderr
        assert sorted(os.listdir(model_dir)) == [folder_lock.HOLDER_FILE]  # nothing new
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel released the killed holder's lock: the run takes the folder over.
    run_cli(*flags)
    assert os.path.exists(os.path.join(model_dir, "teacher", "kd_keras_task.json"))
    assert not os.path.exists(os.path.join(model_dir, folder_lock.HOLDER_FILE))
