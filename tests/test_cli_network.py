"""The network types as the state sees them, through the CLI: leases taken at create and given
back, exports and their conflicts, /etc/hosts and resolv.conf texts, set-network, what info and
ls show, and the RuntimeSpec.net a driver gets. No bridge pot is started here (the data plane is
the drivers', tested with real traffic in their own files); a pot of type none may be."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from ladle import Client
from ladle.hosts.base import NetSpec
from tests.conftest import LADLE, Ladle


@pytest.fixture
def cli(ladle: Ladle) -> Ladle:
    ladle("create-base", "-r", "busybox")
    return ladle


def _net(root: Path, pot: str) -> tuple[NetSpec, str]:
    """The NetSpec and stack a driver would get for `pot` (the engine builds them at start)."""
    from ladle.engine import lifecycle

    with Client(str(root)) as client:
        eng = client._engine(recover=False)
        spec = lifecycle.spec(eng, eng.pot(pot))
        return spec.net, spec.stack


def _rows(root: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{root}/ladle.db?mode=ro", uri=True)
    try:
        return sorted(db.execute(sql))
    finally:
        db.close()


def _leases(root: Path) -> list[tuple[str, str, str]]:
    return _rows(root, "SELECT network, pot, address FROM leases")


def _exports(root: Path) -> list[tuple[str, int, str, int]]:
    return _rows(root, "SELECT pot, host_port, proto, pot_port FROM exports")


def _info(cli: Ladle, pot: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli("info", "--json", pot).stdout)
    return data


def _shown(cli: Ladle, network: str) -> dict[str, list[str]]:
    """`network show`'s leases, by pot."""
    out: dict[str, list[str]] = {}
    for line in cli("network", "show", network).stdout.splitlines():
        if line.startswith("lease:"):
            _, address, pot = line.split()
            out.setdefault(pot, []).append(address)
    return out


def test_a_public_bridge_pot_leases_at_create_and_destroy_gives_them_back(cli: Ladle) -> None:
    said = cli("create", "-p", "web", "-b", "busybox", "-N", "public-bridge", "-S", "dual").stdout
    held = _shown(cli, "public")["web"]
    assert len(held) == 2 and {":" in a for a in held} == {True, False}  # one IPv4, one IPv6
    assert all(a in said for a in held)  # create says what it leased
    info = _info(cli, "web")
    assert sorted(info["addresses"]) == sorted(held)
    assert (info["network"], info["network_name"], info["bridge"], info["stack"]) == \
        ("public-bridge", "public", "ldbr0", "dual")
    ls = cli("ls").stdout.splitlines()
    assert all(a in ls[1] for a in held) and "public-bridge" in ls[1]
    cli("destroy", "-p", "web")
    assert _leases(cli.root) == []


def test_the_spec_a_driver_gets_for_a_bridge_pot(cli: Ladle, tmp_path: Path) -> None:
    cli("create", "-p", "a", "-b", "busybox", "-N", "public-bridge", "-S", "dual", "-d", "192.0.2.53",
        "-d", "2001:db8::53")
    cli("create", "-p", "b", "-b", "busybox", "-N", "public-bridge")
    net, stack = _net(cli.root, "a")
    public = json.loads(cli("network", "show", "public", "--json").stdout)
    assert stack == "dual" and net["type"] == "public-bridge" and net["network"] == "public"
    assert net["bridge"] == "ldbr0"
    assert net["ipv4"] is not None and net["ipv6"] is not None
    assert f"{net['ipv4']['address']}/{net['ipv4']['prefixlen']}" in \
        [f"{lease['address']}/{public['ipv4'].split('/')[1]}" for lease in public["leases"]]
    assert net["ipv4"]["gateway"] == public["gateway4"] and net["ipv6"]["gateway"] == public["gateway6"]
    assert net["ipv6"]["prefixlen"] == 64
    assert net["nat"][0] == public["ipv4"] and ip_network(public["ipv6"]).subnet_of(ip_network(net["nat"][1]))
    assert net["resolv"] == "nameserver 192.0.2.53\nnameserver 2001:db8::53\n"
    assert net["ports"] == [] and net["aliases"] == []
    # The veth's name: ldv and 12 hex digits, one per pot and state root, at most 15 characters.
    other = Ladle(tmp_path / "other")
    other("init")
    other("create-base", "-r", "busybox")
    other("create", "-p", "a", "-b", "busybox", "-N", "public-bridge")
    names = {net["veth"], _net(cli.root, "b")[0]["veth"], _net(other.root, "a")[0]["veth"]}
    assert len(names) == 3 and all(n.startswith("ldv") and len(n) == 15 for n in names)
    int(net["veth"][3:], 16)
    other("destroy", "-p", "a")
    # inherit and none: nothing for the driver to set up.
    cli("create", "-p", "n", "-b", "busybox")
    assert _net(cli.root, "n")[0] == {}


def test_a_private_bridge_pot_gets_its_bridges_addresses_and_interface(cli: Ladle) -> None:
    cli("create-private-bridge", "-B", "br1", "-S", "5")
    cli("create-private-bridge", "-B", "br2", "-S", "5")
    for pot, bridge in (("a", "br1"), ("b", "br2")):
        cli("create", "-p", pot, "-b", "busybox", "-N", "private-bridge", "-B", bridge)
    net_a, net_b = _net(cli.root, "a")[0], _net(cli.root, "b")[0]
    assert (net_a["network"], net_b["network"]) == ("br1", "br2")
    assert len({net_a["bridge"], net_b["bridge"], "ldbr0"}) == 3
    assert all(n["bridge"].startswith("ldbr") and len(n["bridge"]) <= 15 for n in (net_a, net_b))
    shown = json.loads(cli("network", "show", "br1", "--json").stdout)
    assert net_a["ipv4"] == {"address": shown["leases"][0]["address"], "prefixlen": int(shown["ipv4"].split("/")[1]),
                             "gateway": shown["gateway4"]}
    assert _info(cli, "a")["bridge"] == net_a["bridge"]
    line = cli.fails("destroy", "-B", "br1")
    assert "used by pots a" in line


def test_a_chosen_address_is_leased_and_a_taken_one_refused_leaving_nothing(cli: Ladle) -> None:
    cli("create", "-p", "a", "-b", "busybox", "-N", "public-bridge", "-i", "10.192.0.77")
    assert _shown(cli, "public") == {"a": ["10.192.0.77"]}
    before = (_leases(cli.root), cli("ls", "-q").stdout)
    assert "already leased to pot a" in cli.fails("create", "-p", "b", "-b", "busybox", "-N", "public-bridge",
                                                  "-i", "10.192.0.77")
    assert (_leases(cli.root), cli("ls", "-q").stdout) == before


def test_a_create_that_fails_in_its_plan_gives_back_what_it_leased(cli: Ladle) -> None:
    """A private bridge for one pot: the second create's lease fails when it applies, and the
    plan's undo leaves no pot, lease, export or storage of it."""
    cli("create-private-bridge", "-B", "one", "-S", "1")
    cli("create", "-p", "a", "-b", "busybox", "-N", "private-bridge", "-B", "one")
    line = cli.fails("run", "-p", "b", "-N", "private-bridge", "-B", "one", "-e", "80:8080", "busybox", "--", "true")
    assert "has no free address left" in line
    assert cli("ls", "-q").stdout.split() == ["a"]
    assert [pot for _, pot, _ in _leases(cli.root)] == ["a"] and _exports(cli.root) == []
    assert not (cli.root / "storage" / "pots" / "b").exists()


def test_exports_conflicts_and_the_port_ladle_picks(cli: Ladle) -> None:
    for pot in ("a", "b"):
        cli("create", "-p", pot, "-b", "busybox", "-N", "public-bridge")
    said = cli("export-ports", "-p", "a", "-e", "80:8080", "-e", "53:5353/udp").stdout
    assert "8080->80/tcp" in said and "5353->53/udp" in said
    assert _exports(cli.root) == [("a", 5353, "udp", 53), ("a", 8080, "tcp", 80)]
    before = _exports(cli.root)
    assert cli.fails("export-ports", "-p", "b", "-e", "81:8080") == \
        "ladle: host port 8080/tcp is already exported by pot a"
    assert _exports(cli.root) == before
    cli("export-ports", "-p", "b", "-e", "81:8080/udp")  # another protocol: another port
    # Without HOSTPORT: the lowest of 1024-9999 that no pot exports and nothing listens on.
    cli("export-ports", "-p", "b", "-e", "81")
    [first] = [port for pot, port, _, _ in _exports(cli.root) if pot == "b"]
    assert 1024 <= first <= 9999
    with socket.socket() as held:
        held.bind(("0.0.0.0", first))
        cli("export-ports", "-p", "a", "-e", "80")  # replaces a's: 8080 is free again
        picked = [port for pot, port, _, _ in _exports(cli.root) if pot == "a"]
    assert len(picked) == 1 and picked[0] not in (first, 8080) and 1024 <= picked[0] <= 9999
    info = _info(cli, "a")
    assert info["ports"] == [{"proto": "tcp", "pot_port": 80, "host_port": picked[0]}]
    assert f"{picked[0]}->80/tcp" in cli("ls").stdout
    assert f"export:    {picked[0]}->80/tcp" in cli("info", "a").stdout
    assert _net(cli.root, "a")[0]["ports"] == [{"proto": "tcp", "pot_port": 80, "host_port": picked[0]}]
    # Rename takes the exports along; destroy gives them back.
    cli("rename", "-p", "a", "-n", "c")
    assert [pot for pot, _, _, _ in _exports(cli.root)].count("c") == 1
    cli("destroy", "-p", "c")
    assert {pot for pot, _, _, _ in _exports(cli.root)} == {"b"}


def test_only_a_bridge_pot_exports_ports(cli: Ladle) -> None:
    cli("create", "-p", "n", "-b", "busybox")
    assert "only a pot on a bridge can export ports" in cli.fails("export-ports", "-p", "n", "-e", "80:8080")
    assert _exports(cli.root) == []


def test_set_network_is_refused_while_the_pot_runs(cli: Ladle) -> None:
    cli("create", "-p", "a", "-b", "busybox", "-N", "public-bridge")
    cli("create", "-p", "up", "-b", "busybox", "-c", "sleep 1000")
    cli("start", "up")
    try:
        assert "is running" in cli.fails("set-network", "-p", "up", "-N", "public-bridge")
        assert _leases(cli.root) and all(pot == "a" for _, pot, _ in _leases(cli.root))
    finally:
        cli("stop", "up")


def test_hosts_lists_the_pots_on_the_same_network_and_the_pots_own_entries(cli: Ladle) -> None:
    cli("create-private-bridge", "-B", "br", "-S", "5")
    cli("create", "-p", "a", "-b", "busybox", "-N", "public-bridge", "-S", "dual")
    cli("create", "-p", "b", "-b", "busybox", "-N", "public-bridge")
    cli("create", "-p", "c", "-b", "busybox", "-N", "private-bridge", "-B", "br")
    cli("set-hosts", "-p", "a", "-H", "db.example:192.0.2.7", "-H", "v6:2001:db8::7")
    hosts = _net(cli.root, "a")[0]["hosts"]
    assert hosts is not None
    lines = hosts.splitlines()
    assert lines[:2] == ["127.0.0.1 localhost a", "::1 localhost a"]
    public = _shown(cli, "public")
    assert {f"{addr} {pot}" for pot, addrs in public.items() for addr in addrs} <= set(lines)
    assert not any(line.endswith(" c") for line in lines)  # c is on another bridge
    assert lines[-2:] == ["192.0.2.7 db.example", "2001:db8::7 v6"]
    assert _info(cli, "a")["hosts"] == ["db.example:192.0.2.7", "v6:2001:db8::7"]
    # b lists a but has no entries of its own; renaming a renames it in b's file.
    cli("rename", "-p", "a", "-n", "alpha")
    b_hosts = str(_net(cli.root, "b")[0]["hosts"])
    assert " alpha\n" in b_hosts and " a\n" not in b_hosts and "db.example" not in b_hosts
    cli("set-attr", "-p", "b", "-A", "no-etc-hosts", "-V", "YES")
    assert _net(cli.root, "b")[0]["hosts"] is None
    assert "invalid host name" in cli.fails("set-hosts", "-p", "b", "-H", "bad name:192.0.2.1")


def test_set_network_moves_a_stopped_pot_between_networks(cli: Ladle) -> None:
    cli("create-private-bridge", "-B", "br", "-S", "5")
    cli("create", "-p", "a", "-b", "busybox")
    assert _leases(cli.root) == []
    cli("set-network", "-p", "a", "-N", "public-bridge", "-i", "10.192.0.40")
    assert _leases(cli.root) == [("public", "a", "10.192.0.40")]
    cli("export-ports", "-p", "a", "-e", "80:8080")
    cli("set-network", "-p", "a", "-N", "private-bridge", "-B", "br")
    assert [(net, pot) for net, pot, _ in _leases(cli.root)] == [("br", "a")]
    assert _exports(cli.root) == [("a", 8080, "tcp", 80)]  # still on a bridge: kept
    # The same address again on the same network: the pot's own lease is no obstacle.
    own = _leases(cli.root)[0][2]
    cli("set-network", "-p", "a", "-N", "private-bridge", "-B", "br", "-i", own)
    assert _leases(cli.root) == [("br", "a", own)]
    said = cli("set-network", "-p", "a", "-N", "none").stdout
    assert "dropped" in said and _leases(cli.root) == [] and _exports(cli.root) == []
    assert _info(cli, "a")["network"] == "none"


def test_a_clone_gets_addresses_of_its_own_and_no_exports(cli: Ladle) -> None:
    cli("create", "-p", "a", "-b", "busybox", "-N", "public-bridge")
    cli("export-ports", "-p", "a", "-e", "80:8080")
    cli("snapshot", "-p", "a")
    cli("clone", "-p", "b", "-P", "a")
    public = _shown(cli, "public")
    assert len(public["a"]) == len(public["b"]) == 1 and public["a"] != public["b"]
    cli("clone", "-p", "c", "-P", "a", "-i", "10.192.0.99")
    assert _shown(cli, "public")["c"] == ["10.192.0.99"]
    assert [pot for pot, _, _, _ in _exports(cli.root)] == ["a"]
    assert _info(cli, "c")["network"] == "public-bridge"


def test_an_alias_pot_keeps_its_interface_and_address(cli: Ladle) -> None:
    cli("create", "-p", "al", "-b", "busybox", "-N", "alias", "-i", "lo|192.0.2.10", "-S", "dual",
        "-i", "lo|2001:db8::10")
    net, stack = _net(cli.root, "al")
    assert stack == "dual"
    assert net == {"type": "alias", "resolv": None, "hosts": "127.0.0.1 localhost al\n::1 localhost al\n",
                   "aliases": [{"interface": "lo", "address": "192.0.2.10", "prefixlen": 32},
                               {"interface": "lo", "address": "2001:db8::10", "prefixlen": 128}]}
    assert _leases(cli.root) == []
    assert "already an alias of pot al" in cli.fails("create", "-p", "b", "-b", "busybox", "-N", "alias",
                                                    "-i", "lo|192.0.2.10")
    assert "192.0.2.10" in cli("ls").stdout
    cli("snapshot", "-p", "al")
    assert "needs -i [IF|]IP" in cli.fails("clone", "-p", "c", "-P", "al")  # its addresses are its own
    cli("clone", "-p", "c", "-P", "al", "-i", "lo|192.0.2.11")
    assert _info(cli, "c")["aliases"] == ["lo|192.0.2.11"]


def test_an_alias_without_an_interface_takes_the_default_routes(cli: Ladle) -> None:
    """In a network namespace of its own (no default route) it asks for IF|IP."""
    proc = subprocess.run(["unshare", "--net", *LADLE, "--root", str(cli.root), "create", "-p", "al", "-b",
                           "busybox", "-N", "alias", "-i", "192.0.2.10"], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and proc.stderr.startswith("ladle: ") and "-i IF|IP" in proc.stderr
    assert cli("ls", "-q").stdout == ""
    with open("/proc/net/route") as f:
        default = [r.split()[0] for r in f.read().splitlines()[1:] if r.split()[1] == "00000000"]
    if default:
        cli("create", "-p", "al", "-b", "busybox", "-N", "alias", "-i", "192.0.2.10")
        assert _info(cli, "al")["aliases"] == [f"{default[0]}|192.0.2.10"]


def test_twenty_creates_at_once_get_twenty_distinct_addresses(cli: Ladle) -> None:
    procs = [subprocess.Popen([*LADLE, "--root", str(cli.root), "create", "-p", f"p{i}", "-b", "busybox", "-N",
                               "public-bridge"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(20)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    held = _leases(cli.root)
    assert len(held) == 20 and len({address for _, _, address in held}) == 20
    assert {pot for _, pot, _ in held} == {f"p{i}" for i in range(20)}


def test_a_dry_run_prints_the_leases_and_exports_and_changes_nothing(cli: Ladle) -> None:
    out = cli("run", "--dry-run", "-N", "public-bridge", "-e", "80:8080", "-p", "r", "busybox", "--", "true").stdout
    assert "lease the next free IPv4 address of network public to pot r" in out
    assert "export host port 8080/tcp to port 80 of pot r" in out
    assert "then start pot r" in out
    out = cli("create", "--dry-run", "-p", "a", "-b", "busybox", "-N", "public-bridge", "-S", "dual",
              "-i", "10.192.0.5").stdout
    assert "lease 10.192.0.5 of network public to pot a" in out and "IPv6" in out
    assert cli("ls", "-q").stdout == "" and _leases(cli.root) == [] and _exports(cli.root) == []
