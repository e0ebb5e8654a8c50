"""Limits are enforced, not only written: a pot over its memory is OOM-killed and ladle says so,
one with --pids 20 cannot run 40 processes, --pcpu 20 slows fixed CPU work at least threefold,
-C 1 pins to one CPU (and two such pots to different ones), and stats shows what a pot really
holds. Every test leaves no cgroup, v1 groups included (conftest's leak check)."""

from __future__ import annotations

import json
import os
import time

import pytest

from ladle.hosts.linux import limits
from tests.conftest import Ladle

MiB = 1 << 20


@pytest.fixture
def bb(ladle: Ladle) -> Ladle:
    ladle("create-base", "-r", "busybox")
    return ladle


def pot(ladle: Ladle, name: str, cmd: str, *, persistent: bool = True) -> None:
    ladle("create", "-p", name, "-b", "busybox", "-t", "single", "-c", cmd)
    if not persistent:
        ladle("set-attr", "-p", name, "-A", "persistent", "-V", "NO")


def rss(ladle: Ladle, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ladle("get-rss", "-p", name, "-J").stdout)


def test_a_pot_over_its_memory_limit_is_oom_killed_and_ladle_says_so(bb: Ladle) -> None:
    hog = "dd if=/dev/zero of=/dev/null bs=100M count=1"  # a 100 MiB buffer, touched
    pot(bb, "free", hog, persistent=False)
    bb("start", "free")  # attached: no limit, it ends well
    assert bb("info", "free").stdout.splitlines()[1].split()[1:] == ["exited", "(0)"]
    pot(bb, "hog", hog, persistent=False)
    bb("set-rss", "-p", "hog", "-M", "20M")
    line = bb.fails("start", "-d", "hog")
    assert line.startswith("ladle: pot hog did not start: it was killed for memory (its limit is 20 MiB)"), line
    assert "exit code 137" in line
    deadline = time.monotonic() + 10  # the monitor's own stop records the OOM kill
    while "killed for memory" not in bb("ls").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(x for x in bb("ls").stdout.splitlines() if x.startswith("hog "))
    assert "exited (137, killed for memory)" in line
    info = json.loads(bb("info", "--json", "hog").stdout)
    assert info["status"] == "exited (137, killed for memory)"
    assert info["run"]["error"].startswith("killed for memory")


def test_a_persistent_pot_killed_for_memory_at_start_says_so_and_is_stopped(bb: Ladle) -> None:
    """Its cgroup is still there when the detached start reports (pid 1 lives on): the counter is
    read from it."""
    pot(bb, "hog", "dd if=/dev/zero of=/dev/null bs=100M count=1")
    bb("set-rss", "-p", "hog", "-M", "20M")
    line = bb.fails("start", "-d", "hog")
    assert "pot hog did not start: it was killed for memory (its limit is 20 MiB)" in line
    assert not json.loads(bb("info", "--json", "hog").stdout)["status"].startswith("running")
    pot(bb, "fails", "exit 137")  # a 137 that is no OOM kill is reported as a code
    assert "pot fails did not start: its command exited with code 137" in bb.fails("start", "-d", "fails")


def test_pids_20_cannot_run_40_processes_and_0_lifts_the_limit(bb: Ladle) -> None:
    pot(bb, "forks", "sleep 1000")
    bb("set-rss", "-p", "forks", "--pids", "20")
    bb("start", "forks")
    forty = "i=0; while [ $i -lt 40 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done; true"
    out = bb("exec", "-p", "forks", "sh", "-c", forty, check=False)
    assert "can't fork" in out.stderr or "Resource temporarily unavailable" in out.stderr
    got = rss(bb, "forks")
    assert got["Limits"]["Pids"] == 20 and 2 < got["Pids"] <= 20
    bb("set-rss", "-p", "forks", "--pids", "0")  # at once, on the running pot
    bb("exec", "-p", "forks", "sh", "-c", forty)
    got = rss(bb, "forks")
    assert got["Limits"]["Pids"] is None and got["Pids"] >= 42
    bb("stop", "forks")


def test_every_pot_gets_the_configured_pids_limit_by_default(bb: Ladle) -> None:
    pot(bb, "plain", "sleep 1000")
    bb("start", "plain")
    assert rss(bb, "plain")["Limits"]["Pids"] == 2048
    bb("stop", "plain")


def _timed(ladle: Ladle, name: str, loops: int) -> float:
    """Seconds the loop takes inside the pot, from the uptime before and after (not ladle's own)."""
    out = ladle("exec", "-p", name, "sh", "-c", "cut -d' ' -f1 /proc/uptime; i=0; "
                f"while [ $i -lt {loops} ]; do i=$((i+1)); done; cut -d' ' -f1 /proc/uptime").stdout.split()
    return float(out[1]) - float(out[0])


def test_pcpu_20_makes_fixed_cpu_work_at_least_three_times_slower(bb: Ladle) -> None:
    pot(bb, "cpu", "sleep 1000")
    bb("start", "cpu")
    loops = 50_000
    while (free := _timed(bb, "cpu", loops)) < 0.5:  # about half a second of work, whatever this machine
        loops *= 2
    free = min(free, _timed(bb, "cpu", loops))  # the machine is shared: its best time is the work's
    bb("set-rss", "-p", "cpu", "--pcpu", "20")  # applied at once
    used = rss(bb, "cpu")["CpuSeconds"]
    capped = _timed(bb, "cpu", loops)
    work = rss(bb, "cpu")["CpuSeconds"] - used  # the CPU time the work needs: its time alone on a CPU
    # The machine is shared (other test runs), so the free run may have had less than a CPU;
    # the work's own CPU time is what it takes without a limit and without them.
    assert capped >= 3 * min(free, work), f"{loops} loops: {free:.2f}s free ({work:.2f}s CPU), {capped:.2f}s at 20%"
    assert capped > free
    assert rss(bb, "cpu")["Limits"]["Pcpu"] == 20
    bb("stop", "cpu")


def _cpus_allowed(ladle: Ladle, name: str) -> list[int]:
    status = ladle("exec", "-p", name, "cat", "/proc/self/status").stdout
    line = next(x for x in status.splitlines() if x.startswith("Cpus_allowed_list:"))
    return limits.parse_cpu_list(line.split(":", 1)[1])


@pytest.mark.skipif(len(limits.host_cpus()) < 2, reason="pinning needs two CPUs")
def test_c_1_pins_to_one_cpu_and_two_pots_to_different_ones(bb: Ladle) -> None:
    for name in ("one", "two"):
        pot(bb, name, "sleep 1000")
        bb("set-rss", "-p", name, "-C", "1")
        bb("start", name)
    first, second = _cpus_allowed(bb, "one"), _cpus_allowed(bb, "two")
    assert len(first) == 1 and len(second) == 1 and first != second  # the least used CPU each time
    bb("set-rss", "-p", "one", "-C", f"{second[0]},")  # an explicit list, at once
    assert _cpus_allowed(bb, "one") == second
    bb("set-rss", "-p", "one", "-C", "none")
    assert _cpus_allowed(bb, "one") == limits.host_cpus()
    for name in ("one", "two"):
        bb("stop", name)


def test_stats_and_get_rss_show_what_a_pot_really_holds(bb: Ladle) -> None:
    # dd (busybox's, forked by sh without an exec) holds its 50 MiB buffer, blocked on the pipe
    pot(bb, "holder", "sh -c 'dd if=/dev/zero bs=50M count=1 | sleep 1000'")
    bb("set-rss", "-p", "holder", "-M", "200M")
    pot(bb, "idle", "sleep 1000")
    bb("start", "holder")
    bb("start", "idle")
    time.sleep(0.5)
    got = {s["name"]: s for s in json.loads(bb("stats", "--json").stdout)}
    assert set(got) == {"holder", "idle"}
    assert 45 * MiB <= got["holder"]["memory"] <= 60 * MiB, got["holder"]
    assert got["holder"]["memory_limit"] == 200 * MiB and got["holder"]["pids"] == 4  # catatonit, sh, dd, sleep
    assert got["idle"]["memory"] < 5 * MiB and got["idle"]["pids"] == 2
    table = bb("stats", "idle").stdout.splitlines()
    assert table[0].split() == ["NAME", "CPU", "%", "MEMORY", "LIMIT", "PIDS"] and table[1].startswith("idle ")
    usage = rss(bb, "holder")["ResourceUsage"]
    assert 45 * MiB <= usage["MemoryStats"]["RSS"] <= 60 * MiB
    assert isinstance(usage["CpuStats"]["Percent"], int)
    procs = json.loads(bb("ps", "--json", "holder").stdout)
    assert [p["pid"] for p in procs][:1] == [1] and procs[0]["command"] == "catatonit -P"
    assert [p["command"] for p in procs][-1] == "sleep 1000" and [p["pid"] for p in procs] == [1, 2, 3, 4]
    assert all(os.path.exists(f"/proc/{p['host_pid']}") for p in procs)
    bb("stop", "holder")
    bb("stop", "idle")
    assert "not running" in bb.fails("stats", "holder")


def test_a_cpu_hog_shows_in_stats(bb: Ladle) -> None:
    pot(bb, "busy", "sh -c 'while :; do :; done'")
    bb("set-rss", "-p", "busy", "--pcpu", "50")
    bb("start", "busy")
    time.sleep(0.3)
    percent = json.loads(bb("stats", "--json", "busy").stdout)[0]["cpu_percent"]
    assert 30 <= percent <= 65, percent  # half a CPU, measured over half a second
    bb("stop", "busy")


def test_gc_removes_a_v1_group_a_crash_left_without_its_cgroup2_group(bb: Ladle) -> None:
    from ladle.hosts.linux import cgroup

    if "memory" not in limits.v1():
        pytest.skip("no v1 memory controller here")
    pot(bb, "left", "sleep 1000")
    bb("set-rss", "-p", "left", "-M", "64M")
    bb("start", "left")
    group = cgroup.pot_dir(str(bb.root), "left")
    bb("stop", "left")
    leaked = limits.v1_dirs(group)["memory"]
    os.makedirs(leaked)  # as a crash between the two removals would leave it
    assert "removed the empty cgroup of pot left" in bb("gc").stdout
    assert not os.path.exists(leaked) and not os.path.exists(os.path.dirname(leaked))
