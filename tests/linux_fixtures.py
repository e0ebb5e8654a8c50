"""Fixtures for the Linux runtime: a busybox root built with the driver's own base steps, pots
described by hand-built RuntimeSpecs against a scratch state store, and a check that nothing a
test started outlives it (no process, no mount, no process working in the scratch directory)."""

from __future__ import annotations

import io
import os
import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from ladle import proc
from ladle.hosts.base import RunRecord, RuntimeSpec
from ladle.hosts.linux import LinuxHost
from ladle.plan.executor import Executor
from ladle.plan.runner import SubprocessRunner
from ladle.plan.steps import Context
from ladle.state.store import Store
from ladle.storage.snapshotter import Mount

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


class Pots:
    """Start, stop and inspect pots in one scratch directory."""

    def __init__(self, base: Path, tree: Path) -> None:
        self.base = base
        self.tree = tree
        self.store = Store(str(base / "ladle.db"))
        self.runner = SubprocessRunner()
        self.host = LinuxHost(self.runner, str(base))
        self.ctx = Context(self.runner, self.store)
        self.specs: dict[str, RuntimeSpec] = {}
        self.pids: set[tuple[int, int | None]] = set()

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
                           network=network, log_path=str(pot / "log" / f"{name}.log"),
                           run_dir=str(pot / "run"))
        self.specs[name] = spec
        return spec

    def upper(self, name: str = "web") -> Path:
        return self.base / name / "upper"

    def start(self, spec: RuntimeSpec) -> RunRecord:
        try:
            Executor(self.ctx).run("start", spec.name, self.host.start_plan(spec))
        finally:
            row = self.store.get("runs", pot=spec.name)
            if row:
                self.pids.update({(row["supervisor_pid"], row["supervisor_start"]),
                                  (row["init_pid"], row["init_start"])})
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

    def wait_exit(self, name: str = "web", timeout: float = 10) -> RunRecord:
        """Wait (on pidfds, no polling) until the run's supervisor has recorded the end."""
        run = self.run(name)
        for pid, start in ((run.init_pid, run.init_start), (run.supervisor_pid, run.supervisor_start)):
            wait_pid(pid, start, timeout)
        return self.run(name)

    def log(self, name: str = "web") -> str:
        return Path(self.specs[name].log_path).read_text()

    def wait_log(self, text: str, name: str = "web", timeout: float = 10) -> str:
        """Wait (with inotify) until `text` appears in the pot's log."""
        from ladle.supervise.logs import follow

        out = io.BytesIO()
        path = self.specs[name].log_path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        deadline = _now() + timeout
        follow(path, lambda: text.encode() not in out.getvalue() and _now() < deadline, out)
        got = out.getvalue().decode(errors="replace")
        assert text in got, f"{text!r} never appeared in the log:\n{got}"
        return got

    def cleanup(self) -> None:
        for name, spec in self.specs.items():
            if self.store.get("runs", pot=name):
                try:
                    self.stop(spec)
                except Exception as e:  # report, but keep cleaning
                    print(f"cleanup of {name} failed: {e}")
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
        left = leftovers(tmp_path, p.pids)
        assert not left, "left behind:\n" + "\n".join(left)
