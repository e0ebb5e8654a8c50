"""A command killed with SIGKILL at any step leaves nothing the next command or `gc` cannot repair."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import LADLE, Ladle
from tests.leaks import mounts


def killed(cli: Ladle, fault: str, *args: str) -> None:
    proc = subprocess.run([*LADLE, "--root", str(cli.root), *args], capture_output=True, text=True,
                          env={**os.environ, "LADLE_FAULT": fault})
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.parametrize("step", range(5))
def test_create_killed_at_each_step_is_rolled_back(ladle: Ladle, step: int) -> None:
    ladle("create-base", "-r", "busybox")
    killed(ladle, f"create:{step}", "create", "-p", "web", "-b", "busybox")
    report = ladle("gc").stdout
    assert "rolled back interrupted create of pot:web" in report
    assert json.loads(ladle("ls", "--json").stdout) == []
    assert not (ladle.root / "storage" / "pots" / "web").exists()
    ladle("create", "-p", "web", "-b", "busybox")  # the name is free again


def test_an_operation_killed_after_its_last_step_is_finished_never_undone(ladle: Ladle) -> None:
    ladle("create-base", "-r", "busybox")
    killed(ladle, "create:5", "create", "-p", "web", "-b", "busybox")
    assert "finished interrupted create of pot:web" in ladle("gc").stdout
    assert [p["name"] for p in json.loads(ladle("ls", "--json").stdout)] == ["web"]


def test_a_rollback_killed_after_any_step_keeps_one_whole_tree(ladle: Ladle) -> None:
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "web", "-b", "busybox")
    tree = ladle.root / "storage" / "pots" / "web" / "fs"
    (tree / "f").write_text("old")
    ladle("snapshot", "-p", "web", "-n", "s1")
    for step in range(6):
        (tree / "f").write_text("new")
        if subprocess.run([*LADLE, "--root", str(ladle.root), "rollback", "-p", "web", "-s", "s1"],
                          env={**os.environ, "LADLE_FAULT": f"rollback:{step}"}).returncode == 0:
            break
        ladle("gc")
        assert (tree / "f").read_text() in ("old", "new")
    assert (tree / "f").read_text() == "old"


def test_the_next_command_repairs_a_crash_by_itself(ladle: Ladle) -> None:
    ladle("create-base", "-r", "busybox")
    killed(ladle, "create:1", "create", "-p", "web", "-b", "busybox")
    proc = ladle("create", "-p", "web", "-b", "busybox")
    assert "rolled back interrupted create" in proc.stderr


def test_destroy_killed_half_way_is_finished(ladle: Ladle) -> None:
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "web", "-b", "busybox")
    killed(ladle, "destroy:0", "destroy", "-p", "web")
    assert "finished interrupted destroy" in ladle("gc").stdout
    assert json.loads(ladle("ls", "--json").stdout) == []
    assert not (ladle.root / "storage" / "pots" / "web").exists()


def test_a_killed_monitor_stops_nothing_and_loses_nothing(ladle: Ladle) -> None:
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "job", "-b", "busybox", "-c", "sh -c 'echo before; read x < /go; echo after; exit 7'")
    ladle("set-attr", "-p", "job", "-A", "persistent", "-V", "no")
    ladle("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    subprocess.run(["mkfifo", str(ladle.root / "storage" / "pots" / "job" / "fs" / "go")], check=True)
    ladle("start", "-d", "job")
    ladle("start", "web")
    run = json.loads(ladle("info", "-p", "web", "--json").stdout)["run"]
    os.kill(run["monitor_pid"], signal.SIGKILL)
    report = ladle("gc").stdout
    assert "crashed" not in report  # gc adopts running pots; it never stops them
    for name in ("job", "web"):
        assert json.loads(ladle("info", "-p", name, "--json").stdout)["status"] == "running"
    assert ladle("exec", "job", "--", "sh", "-c", "echo go > /go").returncode == 0
    ladle("exec", "web", "--", "true")
    deadline = time.monotonic() + 10
    while json.loads(ladle("info", "-p", "job", "--json").stdout)["status"] == "running":
        assert time.monotonic() < deadline, "job never ended"
    assert json.loads(ladle("info", "-p", "job", "--json").stdout)["status"] == "exited (7)"
    assert ladle("logs", "job").stdout == "before\nafter\n"
    assert ladle("last-run-stats", "-p", "job").stdout == '{"ExitCode": 7}\n'
    ladle("stop", "web")


def points() -> set[str]:
    return {m.split()[1] for m in mounts()}


def test_gc_unmounts_what_a_crash_left_under_the_state_root_and_a_dry_run_only_says_so(ladle: Ladle) -> None:
    left = ladle.root / "run" / "web" / "stage"
    left.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(left)], check=True)
    try:
        dry = ladle("--dry-run", "gc")
        assert f"umount -l {left}" in dry.stdout.splitlines() and str(left) in points()
        assert f"unmounted leaked {left}" in ladle("gc").stdout
        assert str(left) not in points()
    finally:
        subprocess.run(["umount", "-l", str(left)], capture_output=True)


def test_parallel_commands_on_different_pots_and_on_the_same_pot(ladle: Ladle) -> None:
    ladle("create-base", "-r", "busybox")
    procs = [subprocess.Popen([*LADLE, "--root", str(ladle.root), "create", "-p", f"p{i}", "-b", "busybox"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
    assert [p.wait() for p in procs] == [0] * 6
    same = [subprocess.Popen([*LADLE, "--root", str(ladle.root), "create", "-p", "same", "-b", "busybox"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    codes = [p.wait() for p in same]
    errors = [p.stderr.read() for p in same if p.stderr]
    assert codes.count(0) == 1
    assert sum("already exists" in e for e in errors) == 3
    assert len(json.loads(ladle("ls", "--json").stdout)) == 7
