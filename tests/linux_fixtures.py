"""Fixtures for the Linux runtime: a busybox root built with the driver's own base steps, pots
described by hand-built RuntimeSpecs, started by the driver's plans under a real monitor of a
scratch state root, and a check that nothing a test started outlives it (no process, no mount, no
process working in the scratch directory)."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from ladle import platform as proc
from ladle.hosts.base import RunRecord, RuntimeSpec
from ladle.hosts.linux import LinuxHost
from ladle.plan.executor import Executor
from ladle.plan.runner import SubprocessRunner
from ladle.plan.steps import Context
from ladle.state.store import Store
from ladle.storage.snapshotter import Mount
from ladle.supervise.client import MonitorClient

MARK = "LADLE_TEST_MARK"


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox base tree, built once per session with LinuxHost.release_base_steps."""
    dest = tmp_path_factory.mktemp("busybox") / "tree"
    dest.mkdir()
    host = LinuxHost(SubprocessRunner(), str(dest.parent))
    steps = host.release_base_steps("busybox", str(dest), "", "")
    Executor(Context(SubprocessRunner(), None)).run("base", "busybox", steps)
    return dest


class PlanHost(LinuxHost):
    """The Linux driver on a scratch root that has no pot rows: a pot whose command ends is ended
    by its monitor, not by `ladle stop`."""

    def on_exit(self, name: str, remove: bool = False) -> list[str]:
        return []


class Pots:
    """Start, stop and inspect pots in one scratch state root, through the driver's plans and a
    real monitor."""

    def __init__(self, base: Path, tree: Path) -> None:
        self.base = base
        self.tree = tree
        for d in ("run", "logs", "locks"):
            (base / d).mkdir(exist_ok=True)
        self.store = Store(str(base / "ladle.db"))
        self.runner = SubprocessRunner()
        self.host = PlanHost(self.runner, str(base))
        self.monitor = MonitorClient(str(base), self.host.monitor_argv())
        self.ctx = Context(self.runner, self.store, lambda: self.monitor)
        self.specs: dict[str, RuntimeSpec] = {}
        self.pids: set[tuple[int, int | None]] = set()
        self.leaked: list[str] = []

    def spec(self, cmd: str, name: str = "web", network: str = "none", root: str = "overlay",
             mounts: list[Mount] | None = None, env: dict[str, str] | None = None,
             **attrs: str) -> RuntimeSpec:
        pot = self.base / name
        if root == "overlay":
            for d in ("upper", "work"):
                (pot / d).mkdir(parents=True, exist_ok=True)
            roots = [Mount("overlay", "overlay", "/", (f"lowerdir={self.tree}", f"upperdir={pot}/upper",
                                                      f"workdir={pot}/work"))]
        else:
            roots = [Mount("bind", str(self.tree), "/", ("ro",))]
        all_attrs = {**self.host.attr_defaults(), "persistent": "NO", **attrs}
        spec = RuntimeSpec(name=name, hostname=f"{name}.pots.test", root=roots, mounts=mounts or [],
                           cmd=cmd, env={MARK: str(self.base), **(env or {})}, attrs=all_attrs,
                           network=network, log_path=str(self.base / "logs" / f"{name}.log"),
                           run_dir=str(self.base / "run" / name))
        self.specs[name] = spec
        return spec

    def upper(self, name: str = "web") -> Path:
        return self.base / name / "upper"

    def start(self, spec: RuntimeSpec) -> RunRecord:
        try:
            Executor(self.ctx).run("start", spec.name, self.host.start_plan(spec))
        finally:
            row = self.store.get("runs", pot=spec.name)
            if row and row["init_pid"]:
                self.pids.update({(row["init_pid"], row["init_start"]), (row["main_pid"], row["main_start"])})
        return self.run(spec.name)

    def run(self, name: str = "web") -> RunRecord:
        row = self.store.get("runs", pot=name)
        assert row is not None, f"no run recorded for {name}"
        return RunRecord(**{k: row[k] for k in RunRecord.__dataclass_fields__})

    def row(self, name: str = "web") -> dict[str, object]:
        row = self.store.get("runs", pot=name)
        assert row is not None
        return row

    def stop(self, spec: RuntimeSpec) -> None:
        Executor(self.ctx).run("stop", spec.name, self.host.stop_plan(spec, self.run(spec.name)),
                               on_crash="finish")

    def exec(self, spec: RuntimeSpec, argv: list[str], tty: bool = False, env: dict[str, str] | None = None,
             ) -> int | None:
        return self.host.exec(spec, self.run(spec.name), argv, self.monitor, tty=tty, env=env or {})

    def wait_exit(self, name: str = "web", timeout: float = 10) -> RunRecord:
        """Wait until the pot's command has ended and its monitor has ended the pot (its pid 1
        gone, on a pidfd) and recorded it."""
        self.monitor.request("wait", pot=name)
        run = self.run(name)
        wait_pid(run.init_pid, run.init_start, timeout)
        deadline = _now() + timeout
        while self.run(name).state == "running" and _now() < deadline:
            self.monitor.request("hello")  # the monitor writes the end right after pid 1 is gone
        return self.run(name)

    def log(self, name: str = "web") -> str:
        return Path(self.specs[name].log_path).read_text()

    def wait_log(self, text: str, name: str = "web", timeout: float = 10) -> str:
        """Wait (with the platform's file watcher) until `text` appears in the pot's log."""
        from ladle.supervise.logs import follow

        out = bytearray()
        deadline = _now() + timeout

        def waiting() -> bool:
            return text.encode() not in out and _now() < deadline

        for chunk in follow(self.specs[name].log_path, waiting):
            out.extend(chunk)
        got = out.decode(errors="replace")
        assert text in got, f"{text!r} never appeared in the log:\n{got}"
        return got

    def cleanup(self) -> None:
        for name, spec in self.specs.items():
            row = self.store.get("runs", pot=name)
            if row and row["state"] == "running":
                try:
                    self.stop(spec)
                except Exception as e:  # report, but keep cleaning
                    print(f"cleanup of {name} failed: {e}")
        # a pot that ended by itself leaves its empty cgroup to `ladle stop` (its on_exit, which
        # this host has not); processes still in one are a leak
        for name, populated in self.host.leftovers().items():
            if populated:
                self.leaked.append(f"processes left in the cgroup of pot {name}")
            Executor(self.ctx).run("stop", name, self.host.leftover_plan(name), on_crash="finish")
        self.monitor.close()
        self.store.close()


def _now() -> float:
    import time
    return time.monotonic()


def wait_pid(pid: int | None, start: int | None, timeout: float = 10) -> None:
    """Wait until the process has exited, on its pidfd."""
    if not pid or not proc.alive(pid, start):
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if proc.alive(pid, start):
            ready, _, _ = select.select([fd], [], [], timeout)
            assert ready, f"process {pid} still running after {timeout}s"
    finally:
        os.close(fd)


def leftovers(base: Path, pids: set[tuple[int, int | None]]) -> list[str]:
    """Anything of this test still alive: recorded pids, processes working or rooted in `base`
    or carrying its mark, mounts under `base`."""
    found = []
    for pid, start in pids:
        if proc.alive(pid, start):
            found.append(f"process {pid} (recorded) is still alive")
    prefix = str(base)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for link in ("cwd", "root"):
            try:
                target = os.readlink(f"/proc/{entry}/{link}")
            except OSError:
                continue
            if target.startswith(prefix):
                found.append(f"process {entry} has its {link} at {target}")
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if f"{MARK}={prefix}".encode() in f.read().split(b"\0"):
                    found.append(f"process {entry} belongs to a pot of this test")
        except OSError:
            pass
    with open("/proc/self/mounts") as f:
        for line in f:
            if prefix in line.split()[1]:
                found.append(f"mount left: {line.strip()}")
    return found


@pytest.fixture
def pots(tmp_path: Path, busybox_root: Path) -> Iterator[Pots]:
    """Pots in a scratch directory; all stopped afterwards, and nothing may be left."""
    p = Pots(tmp_path, busybox_root)
    try:
        yield p
    finally:
        p.cleanup()
        left = p.leaked + leftovers(tmp_path, p.pids)
        assert not left, "left behind:\n" + "\n".join(left)
