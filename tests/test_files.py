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
