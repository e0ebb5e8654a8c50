"""`ladle show` (pot's show) on real pots in a host network namespace: a block for each running
pot with its limits, what it uses, its addresses and exports; `-p` one pot, which must run."""

from __future__ import annotations

import json

from tests.conftest import Ladle
from tests.netns import Net
from tests.test_net_cli import NsLadle, nsladle  # noqa: F401  (a fixture)

MiB = 1 << 20


def test_show_lists_each_running_pots_limits_usage_addresses_and_exports(nsladle: NsLadle,  # noqa: F811
                                                                       net: Net) -> None:
    nsladle("create", "-p", "web", "-b", "busybox", "-N", "public-bridge",
            "-c", "dd if=/dev/zero bs=30M count=1 | sleep 1000")
    nsladle("export-ports", "-p", "web", "-e", "80:8091")
    nsladle("set-rss", "-p", "web", "-M", "200M", "--pids", "50")
    nsladle("create", "-p", "idle", "-b", "busybox", "-c", "sleep 1000")
    nsladle("create", "-p", "off", "-b", "busybox", "-c", "sleep 1000")
    nsladle("start", "web")
    nsladle("start", "idle")
    address = json.loads(nsladle("info", "--json", "web").stdout)["addresses"][0]
    text = nsladle("show").stdout
    assert [line for line in text.splitlines() if line.startswith("pot ")] == ["pot idle", "pot web"]
    web = text[text.index("pot web"):].splitlines()
    assert web[1].split() == ["limits:", "memory", "200.0M,", "pids", "50"]
    assert web[2].startswith("  usage:      memory ") and ", pids 4, cpu " in web[2]  # catatonit, sh, dd, sleep
    assert web[3].split() == ["addresses:", address] and web[4].split() == ["exports:", "8091->80/tcp"]
    got = json.loads(nsladle("show", "-p", "web", "--json").stdout)
    assert [g["name"] for g in got] == ["web"]
    assert 25 * MiB <= got[0]["resources"]["memory"] <= 45 * MiB, got[0]["resources"]
    assert got[0]["ports"] == [{"proto": "tcp", "pot_port": 80, "host_port": 8091}]
    assert "pot off is not running" in nsladle.fails("show", "-p", "off")
    nsladle("stop", "web")
    nsladle("stop", "idle")
    assert net.leftovers() == []
    assert nsladle("show").stdout == ""


def test_show_of_a_pot_that_does_not_exist_is_one_line(ladle: Ladle) -> None:
    assert ladle.fails("show", "-p", "nosuch").startswith("ladle: pot nosuch does not exist")
