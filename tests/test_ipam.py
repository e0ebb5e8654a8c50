"""The IPAM: address arithmetic, leases in the state store (never one address twice, even for 50
processes at once), release on destroy, and the network verbs through the CLI."""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path

import pytest

from ladle import Client
from ladle.errors import Exists, StateError, UsageError
from ladle.net import ipam
from ladle.net.steps import LeaseTake
from tests.conftest import Ladle

# Address arithmetic --------------------------------------------------------------------------


def test_a_30_has_one_address_for_a_pot_then_none() -> None:
    net = IPv4Network("10.0.0.0/30")
    assert str(ipam.gateway(net)) == "10.0.0.1"
    first = ipam.first_free("n", net, set(), [])
    assert str(first) == "10.0.0.2"
    with pytest.raises(UsageError, match=r"network n \(10.0.0.0/30\) has no free address left"):
        ipam.first_free("n", net, {first}, [])


def test_the_next_free_address_skips_leases_and_private_bridges() -> None:
    net = IPv4Network("10.192.0.0/10")
    used = {ip_address("10.192.0.2"), ip_address("10.192.0.3")}
    assert str(ipam.first_free("n", net, used, [])) == "10.192.0.4"
    assert str(ipam.first_free("n", net, used, [IPv4Network("10.192.0.4/30")])) == "10.192.0.8"


@pytest.mark.parametrize(("address", "says"), [
    ("10.0.0.0", "10.0.0.0 is the network address of network n (10.0.0.0/29)"),
    ("10.0.0.1", "10.0.0.1 is the gateway of network n"),
    ("10.0.0.7", "10.0.0.7 is the broadcast address of network n"),
    ("10.0.0.8", "10.0.0.8 is outside network n (10.0.0.0/29)"),
    ("fd00::2", "fd00::2 is not an IPv4 address (network n is 10.0.0.0/29)"),
    ("10.0.0.300", "'10.0.0.300' is not an IP address"),
    ("10.0.0.5", "10.0.0.5 is in private bridge b's network 10.0.0.4/30"),
    ("10.0.0.2", "10.0.0.2 is already leased to pot web on network n"),
])
def test_a_chosen_address_is_refused_with_one_line(address: str, says: str) -> None:
    net = IPv4Network("10.0.0.0/29")
    with pytest.raises((UsageError, Exists)) as e:
        ipam.check("n", net, address, {ip_address("10.0.0.2"): "web"}, {"b": IPv4Network("10.0.0.4/30")})
    assert str(e.value).startswith(says) and "\n" not in str(e.value)


def test_a_chosen_free_address_is_taken_as_given() -> None:
    assert str(ipam.check("n", IPv4Network("10.0.0.0/29"), "10.0.0.3", {}, {})) == "10.0.0.3"


def test_ipv6_never_hands_out_the_subnet_anycast_addresses() -> None:
    net = IPv6Network("fd00:1::/64")
    assert str(ipam.first_free("n", net, set(), [])) == "fd00:1::2"
    with pytest.raises(UsageError, match="reserved anycast"):
        ipam.check("n", net, "fd00:1::ffff:ffff:ffff:ff80", {}, {})
    assert str(ipam.check("n", net, "fd00:1::ffff:ffff:ffff:ff7f", {}, {})).endswith("ff7f")


def test_the_ula_prefix_is_rfc_4193s() -> None:
    net = ipam.ula("0123456789")
    assert net == IPv6Network("fd01:2345:6789::/48")
    assert net.subnet_of(IPv6Network("fd00::/8")) and net.is_private
    assert ipam.public6(net) == IPv6Network("fd01:2345:6789::/64")
    assert ipam.subnet6(net, [IPv6Network("fd01:2345:6789:1::/64")]) == IPv6Network("fd01:2345:6789:2::/64")
    assert ipam.subnet6(IPv6Network("fd01:2345:6789::/64"), []) is None  # room for the public bridge only


@pytest.mark.parametrize(("size", "prefix"), [(1, 30), (2, 29), (5, 29), (6, 28), (13, 28), (14, 27), (253, 24)])
def test_a_private_bridges_size_rounds_up_to_a_block_holding_that_many_pots(size: int, prefix: int) -> None:
    assert ipam.block_for(size) == prefix
    assert 2 ** (32 - prefix) - 3 >= size  # network, gateway and broadcast aside


def test_carving_skips_bridges_and_used_addresses_and_stays_aligned() -> None:
    parent = IPv4Network("10.192.0.0/10")
    used = {parent.network_address: "", ipam.gateway(parent): "", parent.broadcast_address: ""}
    assert ipam.carve(parent, 29, {}, used) == IPv4Network("10.192.0.8/29")
    bridges = {"a": ip_network("10.192.0.8/29"), "b": ip_network("10.192.0.16/28")}
    assert ipam.carve(parent, 28, bridges, used) == IPv4Network("10.192.0.32/28")
    assert ipam.carve(parent, 30, bridges, used) == IPv4Network("10.192.0.4/30")
    with pytest.raises(UsageError, match=re.escape("no free /30 left in the IPv4 network 10.0.0.0/30")):
        ipam.carve(IPv4Network("10.0.0.0/30"), 30, {}, {ip_address("10.0.0.1"): ""})
    with pytest.raises(UsageError, match="a /9 does not fit"):
        ipam.carve(parent, 9, {}, used)


# Leases in the state store --------------------------------------------------------------------


def _take(root: str, pot: str, address: str | None = None, network: str = "public", family: int = 4) -> str:
    """Lease `pot` an address as a pot verb will: the engine's step, in a plan of its own."""
    from ladle.engine import networks

    with Client(root) as client:
        eng = client._engine(recover=False)
        eng.execute("lease", f"pot:{pot}", [networks.lease(eng, pot, network, family, address)])
        row = eng.store.get("leases", network=network, pot=pot, family=family)
        assert row is not None
        return str(row["address"])


def _leases(root: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(root / "ladle.db")
    try:
        return sorted(db.execute("SELECT network, address, pot FROM leases"))
    finally:
        db.close()


def test_leases_come_in_order_and_a_chosen_one_is_checked_when_it_is_taken(ladle: Ladle) -> None:
    root = str(ladle.root)
    assert [_take(root, f"p{i}") for i in range(3)] == ["10.192.0.2", "10.192.0.3", "10.192.0.4"]
    assert _take(root, "v6", family=6).endswith("::2")
    assert _take(root, "pick", "10.192.0.9") == "10.192.0.9"
    with pytest.raises(Exists, match=re.escape("10.192.0.9 is already leased to pot pick on network public")):
        _take(root, "other", "10.192.0.9")
    with pytest.raises(Exists, match="pot p0 already has an IPv4 address on network public"):
        _take(root, "p0")
    # What the step checks is checked again in its transaction: an address taken between the
    # check and the plan is refused, and the table's key refuses a duplicate row in any case.
    step = LeaseTake("public", "late", 4, "10.192.0.0/10", "10.192.0.20")
    _take(root, "early", "10.192.0.20")
    with Client(root) as client:
        eng = client._engine(recover=False)
        with pytest.raises(Exists, match="already leased to pot early"):
            eng.execute("lease", "pot:late", [step])
        with pytest.raises(StateError, match="UNIQUE constraint failed"):
            eng.store.insert("leases", {"network": "public", "address": "10.192.0.20", "pot": "late", "family": 4,
                                        "created": 0})
    assert ("public", "10.192.0.20", "early") in _leases(ladle.root)
    assert not any(pot == "late" for _, _, pot in _leases(ladle.root))


def test_a_private_bridge_leases_from_its_own_network(ladle: Ladle) -> None:
    ladle("create-private-bridge", "-B", "priv", "-S", "1")
    root = str(ladle.root)
    assert _take(root, "a", network="priv") == "10.192.0.6"  # 10.192.0.4/30: .5 is its gateway
    with pytest.raises(UsageError, match=r"network priv \(10.192.0.4/30\) has no free address left"):
        _take(root, "b", network="priv")
    # The public bridge never hands out an address inside the private bridge's block.
    with pytest.raises(UsageError, match=re.escape("10.192.0.6 is in private bridge priv's network 10.192.0.4/30")):
        _take(root, "c", "10.192.0.6")


def _grab(root: str, pot: str, start: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue) -> None:
    start.wait()
    try:
        out.put((pot, _take(root, pot)))
    except Exception as e:  # the parent reports it
        out.put((pot, f"failed: {e}"))


def test_fifty_processes_leasing_at_once_get_fifty_distinct_addresses(ladle: Ladle) -> None:
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(50), ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(str(ladle.root), f"p{i}", start, out)) for i in range(50)]
    for p in procs:
        p.start()
    got = dict(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert not [v for v in got.values() if v.startswith("failed")], got
    assert len(set(got.values())) == 50
    expected = {f"10.192.0.{i}" for i in range(2, 52)}  # the first fifty, none skipped
    assert set(got.values()) == expected
    assert {(pot, address) for _, address, pot in _leases(ladle.root)} == set(got.items())


def test_destroy_releases_the_pots_leases_and_rename_moves_them(ladle: Ladle) -> None:
    ladle("create-base", "-r", "busybox")
    for pot in ("a", "b"):
        ladle("create", "-p", pot, "-b", "busybox")
    root = str(ladle.root)
    _take(root, "a")
    _take(root, "a", family=6)
    _take(root, "b")
    ladle("rename", "-p", "b", "-n", "c")
    assert sorted(pot for _, _, pot in _leases(ladle.root)) == ["a", "a", "c"]
    assert "10.192.0.3 c" in ladle("network", "show", "public").stdout
    ladle("destroy", "-p", "a")
    assert _leases(ladle.root) == [("public", "10.192.0.3", "c")]
    assert _take(root, "d") == "10.192.0.2"  # a's address is free again


def test_a_failed_destroy_gives_the_leases_back_to_the_pot(ladle: Ladle) -> None:
    """The release is a step of the destroy plan: a later step that fails undoes it."""
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "a", "-b", "busybox")
    _take(str(ladle.root), "a")
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", f"""
import dataclasses
import ladle
from ladle.engine import pots
from ladle.plan.steps import Step
@dataclasses.dataclass
class Boom(Step):
    def render(self): return ['# boom']
    def apply(self, ctx): raise ladle.HostError('boom')
pots.RemoveTree = lambda path: Boom()
ladle.Client({str(ladle.root)!r}).destroy('a')
"""], capture_output=True, text=True, timeout=60)
    assert "boom" in proc.stderr
    assert _leases(ladle.root) == [("public", "10.192.0.2", "a")]
    assert "a" in ladle("ls", "-q").stdout.split()


# The verbs -------------------------------------------------------------------------------------


def test_network_verbs(ladle: Ladle) -> None:
    ls = json.loads(ladle("network", "ls", "--json").stdout)
    assert [(n["name"], n["ipv4"], n["gateway4"]) for n in ls] == [("public", "10.192.0.0/10", "10.192.0.1")]
    six = IPv6Network(ls[0]["ipv6"])
    assert six.prefixlen == 64 and six.subnet_of(IPv6Network("fd00::/8"))
    # The ULA prefix is made once per state root: the same every time, and another root's differs.
    assert json.loads(ladle("network", "ls", "--json").stdout)[0]["ipv6"] == str(six)
    other = Ladle(ladle.root.parent / "other")
    other("init")
    assert json.loads(other("network", "ls", "--json").stdout)[0]["ipv6"] != str(six)

    assert ladle("create-private-bridge", "-B", "b1", "-S", "5").stdout == (
        f"created private bridge b1: 10.192.0.8/29 and {six.supernet(16)[0] + (1 << 64)}/64\n")
    ladle("create-private-bridge", "-B", "b2", "-n", "10.192.1.0/24")
    assert "overlaps private bridge b2" in ladle.fails("create-private-bridge", "-B", "b3", "-n", "10.192.1.128/25")
    _take(str(ladle.root), "web", network="b1")
    show = json.loads(ladle("network", "show", "b1", "--json").stdout)
    assert show["ipv4"] == "10.192.0.8/29" and show["gateway4"] == "10.192.0.9"
    assert show["leases"] == [{"address": "10.192.0.10", "pot": "web"}]
    text = ladle("network", "show", "b1").stdout
    assert "ipv4:     10.192.0.8/29 (gateway 10.192.0.9)" in text and "lease:    10.192.0.10 web" in text
    table = ladle("network", "ls").stdout.splitlines()
    assert table[0].split() == ["NAME", "KIND", "IPV4", "GATEWAY", "IPV6", "LEASES"]
    assert table[2].split()[:4] == ["b1", "private-bridge", "10.192.0.8/29", "10.192.0.9"]
    assert table[2].split()[-1] == "1"
    assert ladle.fails("destroy-private-bridge", "-B", "b1") == "ladle: private bridge b1 is used by pots web"
    assert ladle("destroy", "-B", "b2").stdout == "destroyed private bridge b2\n"
    assert ladle("create-private-bridge", "-B", "b2", "-n", "10.192.1.0/24", "--dry-run").stdout == (
        "# state: record networks name=b2 (10.192.1.0/24)\n")
    assert [n["name"] for n in json.loads(ladle("network", "ls", "--json").stdout)] == ["public", "b1"]


def test_the_configured_networks_override_the_defaults(ladle: Ladle, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "ladle.toml"
    conf.write_text('network = "172.20.0.0/16"\nnetwork6 = "fd12:3456:789a::/48"\n')
    monkeypatch.setenv("LADLE_CONFIG", str(conf))
    ls = json.loads(ladle("network", "ls", "--json").stdout)
    assert (ls[0]["ipv4"], ls[0]["gateway4"], ls[0]["ipv6"]) == ("172.20.0.0/16", "172.20.0.1", "fd12:3456:789a::/64")
    conf.write_text('network = "172.20.0.1/16"\n')
    assert "network" in ladle.fails("network", "ls")
    conf.write_text('network6 = "fd12::/96"\n')
    assert "network6 must be an IPv6 network of prefix length 48 to 64" in ladle.fails("network", "ls")
