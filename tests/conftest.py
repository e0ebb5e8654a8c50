"""Shared fixtures: a scratch state root, the CLI as a subprocess, and the leak checks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import leaks
from tests.freebsd_monitor import freebsd  # noqa: F401  (fixture)
from tests.linux_fixtures import busybox_root, pots  # noqa: F401  (fixtures)
from tests.netns import net, npots  # noqa: F401  (fixtures)
from tests.registry_fixtures import fake_registry, htpasswd_registry, registry, registry2, token_registry  # noqa: F401  (fixtures)
from tests.zfs_pool import zfs_pool  # noqa: F401  (fixture)

LADLE = [sys.executable, "-m", "ladle"]
# Monitors started by the tests go away soon after their last pot, so none outlives the run.
os.environ.setdefault("LADLE_MONITOR_IDLE", "0.5")


@pytest.fixture(autouse=True, scope="session")
def no_leaks_in_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The whole run fails if anything it made is still on the host at the end, monitors of its
    state roots included (they go by themselves once idle: a test that left a pot keeps one)."""
    leaks.claim(str(tmp_path_factory.getbasetemp()), f"/tmp/ladle-zfs-{os.getpid()}-", f"ladletest{os.getpid()}")
    before = leaks.snapshot(with_zfs=True)
    yield
    left = leaks.leaked(before, leaks.snapshot(with_zfs=True))
    monitors = leaks.monitors_gone(str(tmp_path_factory.getbasetemp()), timeout=10)
    left += [f"monitor: {pid} {cmd}" for pid, cmd in sorted(monitors.items())]
    assert not left, "the test run leaked:\n" + "\n".join(left)


@pytest.fixture(autouse=True)
def no_leaks_in_test() -> Iterator[None]:
    """Each test must leave no mount, pot process or namespace behind (ZFS is checked per run)."""
    before = leaks.snapshot()
    yield
    left = leaks.leaked(before, leaks.snapshot())
    assert not left, "this test leaked:\n" + "\n".join(left)


class Ladle:
    """Runs the real CLI in a subprocess against one scratch root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str, check: bool = True, input: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*LADLE, "--root", str(self.root), *args], capture_output=True, text=True,
                              input=input, timeout=timeout, env={**os.environ, "LADLE_LOCK_TIMEOUT": "30"})
        if check and proc.returncode != 0:
            raise AssertionError(f"ladle {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def fails(self, *args: str, code: int | None = None) -> str:
        """Run a command that must fail with one clear line on stderr; return that line."""
        proc = self(*args, check=False)
        assert proc.returncode != 0, f"ladle {' '.join(args)} should have failed:\n{proc.stdout}"
        if code is not None:
            assert proc.returncode == code, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        assert lines[0].startswith("ladle: ")
        return lines[0]


@pytest.fixture
def ladle(tmp_path: Path) -> Iterator[Ladle]:
    """A ladle initialised with dir storage in a scratch root; every pot destroyed afterwards."""
    cli = Ladle(tmp_path / "root")
    cli("init")
    yield cli
    _teardown(cli)


def _teardown(cli: Ladle) -> None:
    names = cli("ls", "-q", check=False).stdout.split()
    for name in names:
        cli("destroy", "-p", name, "-r", "-F", check=False)
