"""Escape probes for resource limits: a pot's root cannot lift its own limits nor leave its
cgroups. It has no cgroupfs (none is mounted in a pot, and it may not mount one: no
CAP_SYS_ADMIN), /sys is read-only, and the host's cgroup files are outside its root; its
processes stay in the pot's groups whatever they write to /proc/self."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Ladle, _teardown

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Ladle]:
    ladle = Ladle(tmp_path / "root")
    ladle("init")
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "box", "-b", "busybox", "-t", "single", "-c", "sleep 1000")
    ladle("set-rss", "-p", "box", "-M", "32M", "--pids", "10", "--pcpu", "10")
    ladle("start", "box")
    yield ladle
    _teardown(ladle)


def test_a_pot_cannot_mount_cgroupfs_nor_write_a_limit(capped: Ladle) -> None:
    tries = ("mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg",
             "mkdir -p /tmp/cg1 && mount -t cgroup -o memory none /tmp/cg1",
             "echo max > /sys/fs/cgroup/memory.max", "echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes",
             "echo max > /sys/fs/cgroup/pids/pids.max", "echo 0 > /sys/fs/cgroup/unified/cgroup.procs")
    for attempt in tries:
        assert capped("exec", "-p", "box", "sh", "-c", attempt, check=False).returncode != 0, attempt
    got = json.loads(capped("get-rss", "-p", "box", "-J").stdout)["Limits"]
    assert (got["Memory"], got["Pids"], got["Pcpu"]) == (32 << 20, 10, 10)


def test_every_process_of_the_pot_stays_in_its_groups(capped: Ladle) -> None:
    lines = capped("exec", "-p", "box", "sh", "-c", "cat /proc/self/cgroup; sh -c 'cat /proc/self/cgroup'").stdout
    mine = [line.split(":", 2)[2] for line in lines.splitlines() if line.split(":")[1] in ("", "memory", "pids", "cpu")]
    assert mine and all(path.startswith("/ladle/") and path.endswith("/box") for path in mine), lines
