"""Every process of a pot lives in the pot's cgroup, so a crash that leaves no record of a pot's
processes (its monitor and `ladle start` killed together) still leaves nothing `gc` and
`destroy` cannot find and end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ladle import platform
from ladle.hosts.linux import cgroup
from tests.conftest import LADLE, Ladle
from tests.leaks import cgroups, cmdline


@pytest.fixture
def bb(ladle: Ladle) -> Ladle:
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    return ladle


def monitor_of(root: Path, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if pid.isdigit() and cmdline(pid) == f"ladle-mon {root}":
                return int(pid)
        time.sleep(0.01)
    raise AssertionError(f"no monitor of {root}")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def processes_in(namespace: str) -> list[str]:
    """Every live process of the pot's pid namespace, found by scanning /proc."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and pid_namespace(int(pid)) == namespace:
            cmd = cmdline(pid)
            if cmd:  # a zombie has no command line
                found.append(f"{pid} {cmd}")
    return found


@pytest.fixture
def leftover() -> Iterator[list[tuple[int, int | None]]]:
    """Processes a test saw; killed afterwards if the code under test left them (so that a failing
    run leaves the machine clean)."""
    seen: list[tuple[int, int | None]] = []
    yield seen
    for pid, start in seen:
        if platform.alive(pid, start):
            os.kill(pid, signal.SIGKILL)


def test_a_start_killed_with_its_monitor_leaves_no_process_after_gc_and_destroy(
        bb: Ladle, leftover: list[tuple[int, int | None]]) -> None:
    start = subprocess.Popen([*LADLE, "--root", str(bb.root), "start", "web"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    monitor = monitor_of(bb.root)
    init = None
    deadline = time.monotonic() + 20
    while init is None:  # the moment pid 1 has become the pot's init, before its command runs
        assert time.monotonic() < deadline, "the pot's init never ran"
        init = next((c for c in children(monitor) if (cmdline(str(c)) or "").startswith("catatonit")), None)
    os.kill(monitor, signal.SIGSTOP)  # the monitor stops here: it never hears of the start's end
    start.kill()
    os.kill(monitor, signal.SIGKILL)
    start.wait()
    namespace = pid_namespace(init)
    assert namespace is not None
    leftover.append((init, platform.start_time(init)))
    assert processes_in(namespace), "the crash should have left the pot's init running"

    report = bb("gc").stdout
    if start.returncode == -signal.SIGKILL:  # (not if it won the race and finished: then destroy ends it)
        assert "rolled back interrupted start of pot:web" in report
    bb("destroy", "-F", "-p", "web")
    assert processes_in(namespace) == []


def test_a_pot_whose_run_record_and_monitor_are_gone_is_ended_by_gc(
        bb: Ladle, leftover: list[tuple[int, int | None]]) -> None:
    """As a monitor killed between spawning the command and recording the run leaves it."""
    bb("start", "web")
    with sqlite3.connect(bb.root / "ladle.db") as db:
        init, main, monitor = db.execute("SELECT init_pid, main_pid, monitor_pid FROM runs").fetchone()
        db.execute("DELETE FROM runs")
    leftover += [(init, platform.start_time(init)), (main, platform.start_time(main))]
    namespace = pid_namespace(init)
    assert namespace is not None
    os.kill(monitor, signal.SIGKILL)
    assert len(processes_in(namespace)) == 2  # catatonit and sleep

    assert "ended the leftover processes of pot web" in bb("gc").stdout
    assert processes_in(namespace) == []
    bb("destroy", "-p", "web")


def test_a_running_pot_that_no_monitor_can_adopt_is_ended_by_gc(
        bb: Ladle, leftover: list[tuple[int, int | None]]) -> None:
    bb("start", "web")
    with sqlite3.connect(bb.root / "ladle.db") as db:
        init, monitor = db.execute("SELECT init_pid, monitor_pid FROM runs").fetchone()
    leftover.append((init, platform.start_time(init)))
    namespace = pid_namespace(init)
    assert namespace is not None
    log = bb.root / "logs" / "web.log"
    log.unlink()
    log.mkdir()  # the next monitor cannot reopen the pot's log: it cannot adopt the pot
    os.kill(monitor, signal.SIGKILL)
    report = bb("gc").stdout
    assert "pot web was running but its monitor could not adopt it: stopped it" in report
    assert processes_in(namespace) == []
    assert not os.path.exists(cgroup.pot_dir(str(bb.root), "web"))
    log.rmdir()


def in_cgroup(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return next(line[3:] for line in f.read().splitlines() if line.startswith("0::"))


def test_every_process_of_a_pot_is_in_its_cgroup_and_a_stop_leaves_no_cgroup(bb: Ladle) -> None:
    path = cgroup.pot_dir(str(bb.root), "web")
    relative = path.removeprefix(cgroup.mount())
    assert relative == f"/ladle/{cgroup.key(str(bb.root))}/web"
    bb("start", "web")
    with sqlite3.connect(bb.root / "ladle.db") as db:
        init, main = db.execute("SELECT init_pid, main_pid FROM runs").fetchone()
    assert in_cgroup(init) == in_cgroup(main) == relative
    assert os.getxattr(os.path.dirname(path), cgroup.ROOT_XATTR).decode() == os.path.realpath(bb.root)
    seen = bb("exec", "web", "--", "cat", "/proc/self/cgroup").stdout.splitlines()
    assert f"0::{relative}" in seen
    exec_ = subprocess.Popen([*LADLE, "--root", str(bb.root), "exec", "web", "--", "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while len((Path(path) / "cgroup.procs").read_text().split()) < 3:
            assert time.monotonic() < deadline, "the exec'd sleep never joined the pot's cgroup"
            time.sleep(0.02)
    finally:
        bb("stop", "web")
        exec_.wait(10)
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    bb("start", "web")  # the same pot again: a fresh cgroup
    assert in_cgroup(json.loads(bb("info", "-p", "web", "--json").stdout)["run"]["init_pid"]) == relative
    bb("stop", "web")
    assert not os.path.exists(os.path.dirname(path))
    top = Path(path).parent.parent  # `ladle` itself goes too, unless another root has pots running
    assert not top.exists() or any(p.is_dir() for p in top.iterdir())


def test_the_cgroup_steps_render_exactly_what_they_do(bb: Ladle) -> None:
    path = cgroup.pot_dir(str(bb.root), "web")
    parent = os.path.dirname(path)
    lines = bb("start", "--dry-run", "web").stdout.splitlines()
    assert lines[1:4] == [f"mkdir -p {parent}",
                          f"setfattr -n trusted.ladle.root -v {os.path.realpath(bb.root)} {parent}",
                          f"mkdir {path}"]
    assert f'echo "$PID1" > {path}/cgroup.procs  # by the monitor, before pid 1 goes on' in lines
    assert f"echo $$ > {path}/cgroup.procs  # then what this shell runs is born there" in lines
    assert not os.path.exists(parent)
    exec_lines = bb("exec", "--dry-run", "web", "--", "ps").stdout.splitlines()
    assert exec_lines[0] == f"echo $$ > {path}/cgroup.procs  # then what this shell runs is born there"
    bb("start", "web")
    stop = bb("stop", "--dry-run", "web").stdout.splitlines()
    assert stop[-3:] == [f"if grep -qx 'populated 1' {path}/cgroup.events; then echo 1 > {path}/cgroup.kill; fi",
                         f"rmdir {path}",
                         f"rmdir {parent} 2>/dev/null || true  # the state root's, once no other pot has one"]
    bb("stop", "web")


def test_gc_dry_run_says_it_would_kill_a_leftover_and_kills_nothing(
        bb: Ladle, leftover: list[tuple[int, int | None]]) -> None:
    bb("start", "web")
    with sqlite3.connect(bb.root / "ladle.db") as db:
        init, monitor = db.execute("SELECT init_pid, monitor_pid FROM runs").fetchone()
        db.execute("DELETE FROM runs")
    leftover.append((init, platform.start_time(init)))
    os.kill(monitor, signal.SIGKILL)
    path = cgroup.pot_dir(str(bb.root), "web")
    assert f"echo 1 > {path}/cgroup.kill" in bb("--dry-run", "gc").stdout
    assert platform.alive(init, leftover[0][1])
    bb("start", "web")  # a start ends what an earlier run left
    assert not platform.alive(init, leftover[0][1])
    bb("stop", "web")


@pytest.mark.parametrize(("mountinfo", "where"), [
    ("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
     "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
     "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified"),
    ("24 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
     "25 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate\n",
     "/sys/fs/cgroup"),
    ("25 24 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", None),
])
def test_the_cgroup2_hierarchy_is_found_on_hybrid_and_pure_v2_hosts(mountinfo: str, where: str | None) -> None:
    assert cgroup.find_mount(mountinfo) == where


def test_a_cgroup_marked_for_another_state_root_is_left_alone(tmp_path: Path) -> None:
    """Should two roots' paths ever hash alike, gc of one never ends the other's pots; and the leak
    check names a cgroup by the root it belongs to."""
    root = str(tmp_path / "root")
    base = cgroup.root_dir(root)
    os.makedirs(f"{base}/web")
    try:
        os.setxattr(base, cgroup.ROOT_XATTR, b"/another/root")
        assert cgroup.pots(root) == {}
        os.setxattr(base, cgroup.ROOT_XATTR, os.path.realpath(root).encode())
        assert cgroup.pots(root) == {"web": False}
        real = os.path.realpath(root)
        assert {f"{real}: cgroup ladle/{cgroup.key(root)}", f"{real}: cgroup ladle/{cgroup.key(root)}/web"} <= cgroups()
    finally:
        os.rmdir(f"{base}/web")
        os.rmdir(base)
        with contextlib.suppress(OSError):  # `ladle` too, unless another root's pots run
            os.rmdir(os.path.dirname(base))
