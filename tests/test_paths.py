"""resolve_in_root resolves like a chroot: no symlink or '..' leads out of the root."""

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ladle.paths import resolve_in_root


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").write_text("x")
    os.symlink("/", root / "up")
    os.symlink("../../../../..", root / "etc" / "deep")
    os.symlink("/etc", root / "abs")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return root


def test_absolute_symlinks_restart_at_the_root(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert resolve_in_root(str(root), "/abs/hosts") == str(root / "etc" / "hosts")
    assert resolve_in_root(str(root), "/up/etc/passwd") == str(root / "etc" / "passwd")


def test_dotdot_and_relative_links_stop_at_the_root(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert resolve_in_root(str(root), "/../../etc") == str(root / "etc")
    assert resolve_in_root(str(root), "/etc/deep/tmp") == str(root / "tmp")


def test_symlink_loops_are_an_error(tmp_path: Path) -> None:
    import pytest

    from ladle.errors import UsageError
    root = tree(tmp_path)
    with pytest.raises(UsageError, match="too many symbolic links"):
        resolve_in_root(str(root), "/loop1/x")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["up", "abs", "etc", "deep", "..", ".", "x", "hosts"]), max_size=6))
def test_the_result_is_always_inside_the_root(parts: list[str]) -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        root = tree(Path(d))
        result = resolve_in_root(str(root), "/" + "/".join(parts))
        assert result == str(root) or result.startswith(str(root) + "/")
