"""The limits of both cgroup layouts, file by file. This machine is v1 (hybrid), where the
integration tests enforce them for real (test_resources.py); a pure v2 host's files are laid out
here in a scratch tree shaped like its cgroupfs, to show what ladle writes there and reads back.
And the FreeBSD side at the command boundary: rctl rules, racct off, `rctl -u` and `ps -J`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ladle.errors import HostError
from ladle.hosts.base import RunRecord
from ladle.hosts.freebsd import FreeBSDHost, rctl
from ladle.hosts.linux import limits
from ladle.plan.steps import Context
from tests.recording_runner import Fail, RecordingRunner
from tests.test_freebsd_driver import LIMITS, limited

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
DEBIAN_V1 = "30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"


def test_v1_controllers_are_found_in_mountinfo() -> None:
    assert limits.v1_mounts(HYBRID) == {"cpu": "/sys/fs/cgroup/cpu", "cpuset": "/sys/fs/cgroup/cpuset",
                                        "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
    assert limits.v1_mounts(PURE_V2) == {}
    assert limits.v1_mounts(DEBIAN_V1) == {"cpu": "/sys/fs/cgroup/cpu,cpuacct"}


@pytest.fixture
def v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pure v2 host's tree: the root offers the controllers, nothing is enabled below it yet."""
    monkeypatch.setattr(limits, "v1", lambda: {})
    top = tmp_path / "cgroup"
    pot = top / "ladle" / "0123456789ab" / "web"
    pot.mkdir(parents=True)
    (top / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    for level in (top, top / "ladle", top / "ladle" / "0123456789ab"):
        (level / "cgroup.subtree_control").write_text("")
    for name, value in (("memory.max", "max"), ("memory.swap.max", "max"), ("pids.max", "max"),
                        ("cpu.max", "max 100000"), ("cpuset.cpus", ""), ("memory.current", "52559872"),
                        ("memory.stat", "anon 52428800\ninactive_file 4096\n"), ("pids.current", "3"),
                        ("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
                        ("cpu.stat", "usage_usec 1500000\nuser_usec 1400000\n")):
        (pot / name).write_text(value)
    return pot


def test_v2_enables_the_controllers_and_writes_each_limit(v2: Path) -> None:
    top = v2.parent.parent.parent
    limits.prepare(str(v2))
    for level in (top, top / "ladle", v2.parent):
        assert (level / "cgroup.subtree_control").read_text() == "+memory +pids +cpu +cpuset"
    limits.apply(str(v2), {"memory": 64 << 20, "pids": 20, "pcpu": 20, "cpus": [1]})
    assert [(v2 / f).read_text() for f in ("memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpuset.cpus")] \
        == [str(64 << 20), "0", "20", "20000 100000", "1"]
    limits.apply(str(v2), {"memory": None, "pids": None, "pcpu": None, "cpus": None})  # lifted
    assert [(v2 / f).read_text() for f in ("memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpuset.cpus")] \
        == ["max", "max", "max", "max 100000", ""]
    assert limits.render(str(v2), {"memory": 1 << 20, "pids": 5, "pcpu": 150, "cpus": [0, 1]}) == [
        "# + memory pids cpu cpuset in cgroup.subtree_control of each level above the pot",
        f"echo 1048576 > {v2}/memory.max", f"echo 0 > {v2}/memory.swap.max", f"echo 5 > {v2}/pids.max",
        f"echo '150000 100000' > {v2}/cpu.max", f"echo '0,1' > {v2}/cpuset.cpus"]


def test_v2_usage_and_oom_kills_come_from_the_pot_group(v2: Path) -> None:
    assert limits.usage(str(v2)) == {"memory": 52559872 - 4096, "swap": 0, "pids": 3, "cpu_usec": 1500000,
                                     "oom_kills": 1}


def test_a_limit_the_v2_host_cannot_enforce_is_refused_and_a_default_is_not(v2: Path) -> None:
    (v2 / "pids.max").unlink()  # no pids controller
    limits.apply(str(v2), {"memory": None, "pids": None, "pcpu": None, "cpus": None})
    with pytest.raises(HostError, match=r"cannot set pids\.max: this host.s cgroup2 has no such controller"):
        limits.apply(str(v2), {"memory": None, "pids": 20, "pcpu": None, "cpus": None})


def test_v1_lifts_memsw_before_the_limit_and_gives_the_cpuset_its_parents_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mounts = {c: str(tmp_path / c) for c in limits.CONTROLLERS}
    monkeypatch.setattr(limits, "v1", lambda: mounts)
    for c in limits.CONTROLLERS:
        (tmp_path / c).mkdir()
    cpuset = tmp_path / "cpuset"
    (cpuset / "cpuset.cpus").write_text("0-3\n")
    (cpuset / "cpuset.mems").write_text("0\n")
    group = str(tmp_path / "unified" / "ladle" / "0123456789ab" / "web")
    real_mkdir = __import__("os").mkdir

    def mkdir(path: str, mode: int = 0o777) -> None:  # cgroupfs gives a new group its files, empty
        real_mkdir(path, mode)
        if path.startswith(str(cpuset)):
            for name in ("cpuset.cpus", "cpuset.mems"):
                Path(path, name).write_text("")
    monkeypatch.setattr("os.mkdir", mkdir)
    limits.prepare(group)
    for level in (cpuset / "ladle", cpuset / "ladle" / "0123456789ab", cpuset / "ladle" / "0123456789ab" / "web"):
        assert (level / "cpuset.cpus").read_text() == "0-3" and (level / "cpuset.mems").read_text() == "0"
    memory = tmp_path / "memory" / "ladle" / "0123456789ab" / "web"
    (memory / "memory.memsw.limit_in_bytes").write_text("")
    limits.apply(group, {"memory": 50 << 20, "pids": 0, "pcpu": 20, "cpus": [2, 3]})
    assert (memory / "memory.limit_in_bytes").read_text() == str(50 << 20)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(50 << 20)
    web = "ladle/0123456789ab/web"
    assert (tmp_path / "pids" / web / "pids.max").read_text() == "max"
    assert (tmp_path / "cpu" / web / "cpu.cfs_quota_us").read_text() == "20000"
    assert (cpuset / web / "cpuset.cpus").read_text() == "2,3"


# FreeBSD ----------------------------------------------------------------------------------------

def ctx(runner: RecordingRunner) -> Context:
    return Context(runner=runner)  # type: ignore[call-arg]


def test_without_racct_the_default_pids_limit_is_skipped_and_an_explicit_one_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    off = RecordingRunner().answer(r"^sysctl -n kern.racct.enable$", "0\n")
    rctl.JailLimits("web", {"pids": 2048, "defaults": ["pids"], "cpus": [1]}).apply(ctx(off))
    assert off.lines == ["sysctl -n kern.racct.enable", "cpuset -l 1 -j web"]  # the pinning needs no racct
    with pytest.raises(HostError, match=r"limiting memory needs rctl, which is off: set kern\.racct\.enable=1"):
        rctl.JailLimits("web", {"memory": 1 << 30, "pids": 2048, "defaults": ["pids"]}).apply(ctx(off))
    gone = RecordingRunner().answer(r"^rctl -r", Fail("rctl: failed to remove rule: No such process"))
    rctl.JailLimitsRemove("web").apply(ctx(gone))  # no rules, or no racct: nothing to undo
    assert gone.lines == ["rctl -r jail:web"]


def test_usage_and_processes_come_from_rctl_u_and_ps_j() -> None:
    runner = (RecordingRunner()
              .answer(r"^rctl -u jail:web$", "cputime=12\ndatasize=4096\nmemoryuse=52428800\nmaxproc=4\n"
                                            "pcpu=37\nswapuse=0\nvmemoryuse=104857600\n")
              .answer(r"^sysctl -n hw.clockrate$", "2400\n")
              .answer(r"^ps -ax -J web", "  101     0 /sbin/init\n  230    80 nginx: worker process\n"))
    host = FreeBSDHost(runner, "/var/db/ladle")
    spec, run = limited(), RunRecord("web", "running")
    spec.name = "web"
    assert host.usage(spec, run) == {"memory": 52428800, "swap": 0, "pids": 4, "pcpu": 37, "cpu_usec": 12_000_000,
                                     "mhz": 2400.0, "oom_kills": 0}
    assert host.processes(spec, run) == [{"pid": 101, "host_pid": 101, "uid": 0, "command": "/sbin/init"},
                                         {"pid": 230, "host_pid": 230, "uid": 80, "command": "nginx: worker process"}]
    assert runner.lines[-1] == "ps -ax -J web -o pid= -o uid= -o command="


def test_a_running_jail_gets_its_new_rules_in_place_of_the_old_and_undo_restores_them() -> None:
    host = FreeBSDHost(RecordingRunner().answer(r"sysctl -n hw.ncpu", "4\n"), "/var/db/ladle")
    spec = limited()
    steps = host.limits_plan(spec, RunRecord("capped", "running"), {"memory": 1 << 30, "cpus": None}, dict(LIMITS))
    assert [line for line in steps[0].render() if not line.startswith("#")] == [
        "sysctl -n kern.racct.enable", "rctl -r jail:capped", "rctl -a jail:capped:memoryuse:deny=1073741824",
        "cpuset -l 0,1,2,3 -j capped"]
    undo = steps[0].inverse()[0].render()
    assert "rctl -a jail:capped:pcpu:deny=50" in undo and "cpuset -l 0,2 -j capped" in undo
