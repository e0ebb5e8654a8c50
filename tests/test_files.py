"""`ladle.files.replacing`: the file appears whole under its name, or the old one stays."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ladle import files


def test_the_new_content_replaces_the_old_whole_with_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text("old\n")
    with files.replacing(str(path), 0o600, sync_dir=True) as f:
        f.write(b"new\n")
        assert path.read_text() == "old\n"  # nothing shows before the block ends
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["auth.json"]


def test_a_failure_in_the_block_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"kept")
    with pytest.raises(ValueError), files.replacing(str(path), 0o644, tmp_name=".partial-1-x") as f:
        f.write(b"half")
        assert (tmp_path / ".partial-1-x").exists()
        raise ValueError("a digest that does not match")
    assert path.read_bytes() == b"kept" and os.listdir(tmp_path) == ["blob"]


def test_it_never_writes_through_a_link_planted_at_its_temporary_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("safe\n")
    (tmp_path / ".t").symlink_to(victim)
    with pytest.raises(FileExistsError), files.replacing(str(tmp_path / "out"), 0o644, tmp_name=".t") as f:
        f.write(b"x")
    assert victim.read_text() == "safe\n" and (tmp_path / ".t").is_symlink()
