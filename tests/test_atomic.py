"""fastrec._atomic: a write either completes or leaves the old file exactly as it was."""

import os

import pytest

from fastrec._atomic import atomic_open, write_text_atomically


def test_write_replaces_the_file_and_creates_missing_folders(tmp_path):
    path = tmp_path / "new" / "folder" / "result.json"
    write_text_atomically(path, "first")
    write_text_atomically(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(path.parent) == ["result.json"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, error):
    path = tmp_path / "model.pt"
    path.write_bytes(b"old model")
    with pytest.raises(type(error)):
        with atomic_open(path) as f:
            f.write(b"half of a new mod")
            raise error
    assert path.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["model.pt"]
