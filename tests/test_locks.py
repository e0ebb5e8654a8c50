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


def test_threads_exclude_each_other_and_time_out_without_signals(tmp_path: Path) -> None:
    """flock locks belong to an open file: two threads of one process exclude each other, and a
    thread other than the main one can wait with a timeout (SIGALRM cannot serve it)."""
    import threading

    (tmp_path / "locks").mkdir()
    inside: list[str] = []
    release = threading.Event()
    errors: list[BaseException] = []

    def hold_a() -> None:
        with locks.hold(str(tmp_path), "pot-a"):
            inside.append("first")
            release.wait(10)

    def wait_for_a(timeout: float) -> None:
        try:
            with locks.hold(str(tmp_path), "pot-a", timeout=timeout):
                inside.append("second")
        except BaseException as e:
            errors.append(e)

    first = threading.Thread(target=hold_a)
    first.start()
    while not inside:
        threading.Event().wait(0.01)
    quick = threading.Thread(target=wait_for_a, args=(0.1,))
    quick.start()
    quick.join(5)
    assert len(errors) == 1 and isinstance(errors[0], Busy)
    patient = threading.Thread(target=wait_for_a, args=(10.0,))
    patient.start()
    release.set()
    first.join(5)
    patient.join(5)
    assert inside == ["first", "second"]
    with locks.hold(str(tmp_path), "pot-a", timeout=0):  # the waiter that gave up let it go
        pass
