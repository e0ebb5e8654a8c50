"""A real monitor with the FreeBSD launcher, on Linux: `jexec` is tests/fakes/jexec (it runs the
command here, as if the jail were this host), and the plans' jail commands go to a recording
runner. The two fakes sit at the command boundary, the only place the project allows one."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import ladle
from ladle import platform
from ladle.hosts.base import RuntimeSpec
from ladle.hosts.freebsd import FreeBSDHost
from ladle.hosts.freebsd.steps import JailMain, JailNotice, JailRelease
from ladle.plan.executor import Executor
from ladle.plan.steps import Context
from ladle.state.store import Store
from ladle.supervise.client import MonitorClient
from tests.recording_runner import RecordingRunner

FAKES = Path(__file__).parent / "fakes"


class FreeBSDPots:
    """Pots started by a real monitor with the FreeBSD launcher; `jexec` is tests/fakes/jexec, and
    the jail commands of the plans go to a recording runner (the one allowed fake)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        ladle.Client(str(root)).init()
        self.runner = RecordingRunner()
        self.host = FreeBSDHost(self.runner, str(root))
        self.store = Store(str(root / "ladle.db"))
        self.monitor = MonitorClient(str(root), self.host.monitor_argv())
        self.ctx = Context(self.runner, self.store, lambda: self.monitor)

    def start(self, name: str, argv: list[str], persistent: bool = True,
              on_exit: list[str] | None = None) -> dict[str, object]:
        jexec = ["jexec", "-U", "root", name, *argv]
        step = JailMain(name, jexec, str(self.root / "logs" / f"{name}.log"), str(self.root / "run" / name),
                        persistent, on_exit or [])
        Executor(self.ctx).run("start", f"pot:{name}", [step])
        return self.row(name)

    def row(self, name: str) -> dict[str, object]:
        row = self.store.get("runs", pot=name)
        assert row is not None
        return row

    def stop(self, name: str) -> None:
        """As the FreeBSD stop plan does, with `jail -r` played by SIGTERM to the command."""
        Executor(self.ctx).run("stop", f"pot:{name}", [JailNotice(name)])
        row = self.store.get("runs", pot=name) or {}
        if row.get("main_pid") and platform.alive(row["main_pid"], row["main_start"]):
            os.kill(row["main_pid"], signal.SIGTERM)
        Executor(self.ctx).run("stop", f"pot:{name}", [JailRelease(name)])

    def log(self, name: str) -> str:
        return (self.root / "logs" / f"{name}.log").read_text()

    def monitor_pid(self) -> int:
        return int(self.monitor.request("hello")["pid"])

    def wait_ended(self, name: str, timeout: float = 10) -> dict[str, object]:
        """Until the run records an exit code (the pot's 'wait' answers when its command exits)."""
        self.monitor.request("wait", pot=name)  # answered once the command has exited
        deadline = time.monotonic() + timeout
        while self.row(name)["exit_code"] is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the row is written right after the event
        return self.row(name)

    def close(self) -> None:
        """Stop what is still running (as `jail -r` would), so the monitor forgets it and goes."""
        for name in self.monitor.request("status")["pots"]:
            self.stop(name)
        self.monitor.close()
        self.store.close()


def here(spec: RuntimeSpec, pots: FreeBSDPots) -> RuntimeSpec:
    """The spec with its log and run directory in the test's state root (the monitor writes them),
    and a pot that runs in its own tree given one here, with base.txz's /etc."""
    if len(spec.root) == 1:
        tree = pots.root / "trees" / spec.name
        (tree / "etc").mkdir(parents=True)
        spec = replace(spec, root=[replace(spec.root[0], source=str(tree))])
    return replace(spec, log_path=str(pots.root / "logs" / f"{spec.name}.log"),
                   run_dir=str(pots.root / "run" / spec.name))


@pytest.fixture
def freebsd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FreeBSDPots]:
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("LADLE_FAKE_JEXEC_LOG", str(tmp_path / "jexec.log"))
    pots = FreeBSDPots(tmp_path / "root")
    try:
        yield pots
    finally:
        pots.close()
