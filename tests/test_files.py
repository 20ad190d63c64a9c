"""The one atomic-write helper: a finished write replaces the file, a failed one leaves
the old file (or nothing) and no temporary behind."""

import os

import numpy as np
import pytest

from kd_keras import files


def test_failed_writes_leave_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "results.json"
    files.write_json(str(path), {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}'
    with pytest.raises(RuntimeError):
        with files.atomic_file(str(path)) as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == '{\n  "a": 1\n}'
    assert os.listdir(tmp_path / "sub") == ["results.json"]
    files.save_npz(str(tmp_path / "x.npz"), a=np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "x.npz")["a"], [0, 1, 2])


def test_folders_appear_whole_or_not_at_all(tmp_path):
    target = tmp_path / "student"
    with files.atomic_folder(str(target)) as staging:
        open(os.path.join(staging, "a"), "w").close()
    assert os.listdir(target) == ["a"]
    with pytest.raises(RuntimeError):
        with files.atomic_folder(str(target)) as staging:
            open(os.path.join(staging, "b"), "w").close()
            raise RuntimeError("killed")
    assert os.listdir(target) == ["a"] and os.listdir(tmp_path) == ["student"]
    with files.atomic_folder(str(target)) as staging:
        open(os.path.join(staging, "c"), "w").close()
    assert os.listdir(target) == ["c"]  # replaced whole


def test_a_full_disk_names_the_file_and_leaves_the_old_one(tmp_path):
    import errno

    from kd_keras.errors import DiskFull

    path = tmp_path / "results.json"
    files.write_text(str(path), "old")
    with pytest.raises(DiskFull, match=r"no space left on the disk writing .*results.json"):
        with files.atomic_file(str(path)) as handle:
            handle.write("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]
    with pytest.raises(DiskFull, match=r"writing .*student .*MB free there"):
        with files.atomic_folder(str(tmp_path / "student")):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert os.listdir(tmp_path) == ["results.json"]


KILLED_AT_RENAME = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from kd_keras import files
replace, calls = os.replace, []
def replace_then_die(source, target):
    calls.append(target)
    if len(calls) == {at}:
        os.kill(os.getpid(), signal.SIGKILL)
    replace(source, target)
os.replace = replace_then_die
with files.atomic_folder({target!r}) as staging:
    open(os.path.join(staging, "new"), "w").close()
"""


@pytest.mark.parametrize("at", [1, 2])
def test_a_folder_replaced_by_a_process_killed_between_its_renames_is_recovered(tmp_path, at):
    """SIGKILL before the old folder is moved aside (1) or before the new one is renamed
    in (2): recover() leaves the old folder whole in place and no temporary."""
    import signal
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = tmp_path / "run" / "student"
    target.mkdir(parents=True)
    (target / "old").write_text("weights")
    (tmp_path / "run" / ".results.json.x1y2.tmp").write_text("half")  # a killed atomic_file
    script = KILLED_AT_RENAME.format(repo=repo, at=at, target=str(target))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    left = sorted(os.listdir(tmp_path / "run"))
    assert any(name.startswith(".tmp_student_") for name in left)  # the staging folder
    assert (".student.replaced" in left) == (at == 2) and ("student" in left) == (at == 1)
    done = files.recover(str(tmp_path / "run"))
    assert len(done) == len(left) - (at == 1)
    assert sorted(os.listdir(tmp_path / "run")) == ["student"]
    assert os.listdir(target) == ["old"] and (target / "old").read_text() == "weights"


def test_recover_removes_a_folder_left_aside_once_its_new_version_is_in(tmp_path):
    (tmp_path / "student").mkdir()
    (tmp_path / ".student.replaced").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / ".f.abc.tmp").write_text("another run's")
    files.recover(str(tmp_path), skip=[str(tmp_path / "shared")])
    assert sorted(os.listdir(tmp_path)) == ["shared", "student"]
    assert os.listdir(tmp_path / "shared") == [".f.abc.tmp"]  # a shared folder is left alone
