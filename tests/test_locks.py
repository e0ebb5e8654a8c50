"""Locks: different objects never wait for each other; the same one is busy, then free."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ladle.errors import Busy
from ladle.state import locks


def test_same_lock_is_busy_and_other_locks_are_free(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom ladle.state import locks\n"
                               f"with locks.hold({str(tmp_path)!r}, 'pot-a'):\n"
                               "    print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout and holder.stdout.readline() == "held\n"
        with locks.hold(str(tmp_path), "pot-b", timeout=0):
            pass
        with pytest.raises(Busy, match="pot a is busy"), locks.hold(str(tmp_path), "pot-a", timeout=0):
            pass
        with pytest.raises(Busy, match=r"held it for 0\.2s"), locks.hold(str(tmp_path), "pot-a", timeout=0.2):
            pass
    finally:
        holder.kill()
        holder.wait()
    with locks.hold(str(tmp_path), "pot-a", timeout=0):
        pass  # the kernel released it when the holder died
