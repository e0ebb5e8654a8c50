"""The whole engine planning for FreeBSD on this host, faked at the command boundary only: a
recording runner answers the few commands whose output the engine reads, and the real monitor
runs the pots' commands through tests/fakes/jexec. Also the CLI planning for FreeBSD offline."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ladle.config import Config
from ladle.engine.core import Engine
from ladle.hosts.freebsd import FreeBSDHost
from ladle.supervise.client import MonitorClient
from tests.freebsd_monitor import FAKES
from tests.recording_runner import Fail, RecordingRunner

DIGEST = "a" * 64
NOT_RUNNING = Fail("jls: jail \"web\" not found")


class WatchedMonitor(MonitorClient):
    """The real monitor; what it is asked to run is written into the transcript too."""

    def __init__(self, root: str, runner: RecordingRunner, transcript: list[str]) -> None:
        super().__init__(root, FreeBSDHost(runner, root).monitor_argv())
        self.transcript = transcript

    def request(self, op: str, fds: list[int] | tuple[int, ...] = (), **args: object) -> dict[str, object]:
        if op == "spawn":
            self.transcript.append(f"{shlex.join(args['argv'])}  # by the monitor")  # type: ignore[arg-type]
        return super().request(op, fds, **args)


@contextmanager
def freebsd_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: RecordingRunner,
                   transcript: list[str]) -> Iterator[Engine]:
    """An engine for a FreeBSD host rooted at `tmp_path`, its commands going to `runner` (which
    answers base.txz's MANIFEST and digest, no jail running, amd64), the clock stopped so that
    the commands are the same every run, and the monitor's spawns noted in `transcript`."""
    runner.answer(r"^cat .*MANIFEST$", f"base.txz\t{DIGEST}\t26000\tbase\t\"Base system\"\ton\n")
    runner.answer(r"^sha256 -q ", DIGEST + "\n")
    runner.answer(r"^jls ", NOT_RUNNING)
    runner.answer(r"^uname -[mp]$", "amd64\n")
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monitor = WatchedMonitor(str(tmp_path), runner, transcript)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: 1700000000.0)
    try:
        yield Engine(Config(host="freebsd", root=str(tmp_path)), runner=runner, monitor=lambda: monitor)
    finally:
        monkeypatch.setattr(time, "time", real_time)
        monitor.close()


TRAPPED = ("jls", "jail", "jexec", "uname", "zfs", "mount", "mount_nullfs", "umount", "chflags", "cp", "mkdir",
           "rmdir", "rm", "fetch", "sha256", "tar", "cat", "ifconfig", "route", "pfctl", "sysctl")


def offline_cli(tmp_path: Path, root: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The CLI planning for FreeBSD from this Linux host, with every FreeBSD command it could run
    replaced on the PATH by one that writes its name to `trapped.log`."""
    trap = tmp_path / "trap"
    trap.mkdir()
    for name in TRAPPED:
        (trap / name).write_text(f"#!/bin/sh\necho {name} \"$@\" >> {tmp_path}/trapped.log\nexit 1\n")
        (trap / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{trap}:{os.environ['PATH']}", "LADLE_CONFIG": str(tmp_path / "none.toml")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ladle", "--root", str(root), "--host", "freebsd", "--dry-run",
                               *args], capture_output=True, text=True, env=env)
    return cli
