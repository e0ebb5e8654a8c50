"""FreeBSD networking of pots, tested on any host: the start and stop plans of each network type
render to exact commands pinned in golden files (tests/golden/freebsd/net_<case>.txt; rewrite
them with LADLE_UPDATE_GOLDEN=1 and review every line against the manual pages), every line
passes the man-page checker (ifconfig, route, sysctl, pfctl and the pf.conf text loaded), and the
plans applied to a FreeBSD host faked at the command boundary (tests/freebsd_net_host.py) leave
exactly what they should: one bridge for many pots, gone with the last, no epair, no rule."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ladle.engine import bases, lifecycle, netspec, networks, pots, setup
from ladle.engine.core import Engine
from ladle.engine.potnet import Request
from ladle.errors import Busy, CommandFailed, HostError, UsageError
from ladle.hosts.base import NetAddress, NetSpec, RuntimeSpec
from ladle.hosts.freebsd import FreeBSDHost, jailparams
from ladle.hosts.freebsd.net import (
    NAT_ANCHOR,
    PfAnchorFlush,
    PfAnchorLoad,
    VnetDown,
    VnetUp,
    epair_units,
    pot_end,
)
from ladle.hosts.freebsd.plans import hosts_plan, start_plan, stop_plan
from ladle.plan.executor import Executor
from ladle.plan.steps import Context, Step
from ladle.state import locks
from ladle.storage.snapshotter import Mount
from tests.freebsd_engine import NOT_RUNNING, freebsd_engine, offline_cli
from tests.freebsd_monitor import FreeBSDPots, here
from tests.freebsd_net_host import FreeBSDNet, Interface
from tests.freebsd_syntax import check_line, check_pf_conf, check_rendering, untoken
from tests.recording_runner import Fail
from tests.test_freebsd_driver import ON_EXIT, ROOT, RUNNING, make_spec, render

GOLDEN = Path(__file__).parent / "golden" / "freebsd"
EXT = {"inet": "vtnet0", "inet6": "vtnet0"}
V4 = NetAddress(address="10.192.0.5", prefixlen=10, gateway="10.192.0.1")
V6 = NetAddress(address="fd5a:17c0:3e2b::5", prefixlen=64, gateway="fd5a:17c0:3e2b::1")
NAT = ["10.192.0.0/10", "fd5a:17c0:3e2b::/64"]


def public(name: str = "web", veth: str = "ldv0a1b2c3d4e5f", v4: NetAddress | None = None,
           v6: NetAddress | None = V6) -> RuntimeSpec:
    """A dual-stack pot on the public bridge exporting tcp 80 as 8080, with its /etc/hosts."""
    net = NetSpec(type="public-bridge", network="public", bridge="ldbr0", veth=veth,
                  ipv4=v4 or V4, ipv6=v6, nat=NAT, aliases=[],
                  ports=[{"proto": "tcp", "pot_port": 80, "host_port": 8080}],
                  hosts=f"127.0.0.1 localhost {name}\n::1 localhost {name}\n10.192.0.5 web\n10.192.0.6 api\n",
                  resolv=None)
    return make_spec(name, network="public-bridge", stack="dual" if v6 else "ipv4", net=net)


def private() -> RuntimeSpec:
    """An IPv4 pot on private bridge `backend` (10.192.5.0/28) exporting udp 53 as 5353, with
    its DNS server given (-d) and no /etc/hosts of ladle's (attribute no-etc-hosts)."""
    net = NetSpec(type="private-bridge", network="backend", bridge="ldbr320", veth="ldv99aa00bb11cc",
                  ipv4={"address": "10.192.5.6", "prefixlen": 28, "gateway": "10.192.5.1"}, ipv6=None,
                  nat=NAT, aliases=[], ports=[{"proto": "udp", "pot_port": 53, "host_port": 5353}],
                  hosts=None, resolv="nameserver 10.192.5.1\n")
    return make_spec("db", network="private-bridge", net=net)


def alias() -> RuntimeSpec:
    """A pot with an IPv4 and an IPv6 address on host interfaces."""
    net = NetSpec(type="alias", aliases=[{"interface": "vtnet0", "address": "192.0.2.20", "prefixlen": 32},
                                         {"interface": "vtnet1", "address": "2001:db8::20", "prefixlen": 128}],
                  hosts="127.0.0.1 localhost mail\n::1 localhost mail\n", resolv=None)
    return make_spec("mail", network="alias", stack="dual", net=net)


CASES = {"public_bridge": public, "private_bridge": private, "alias": alias}


def sections(case: str) -> dict[str, list[str]]:
    spec = CASES[case]()
    return {"start": render(start_plan(spec, ON_EXIT, None, ROOT, EXT)),
            "stop": render(stop_plan(spec, RUNNING, ROOT)),
            "a pot on its network came or went (hosts_plan)": render(hosts_plan(spec))}


@pytest.mark.parametrize("case", list(CASES))
def test_rendering_matches_the_golden_file(case: str) -> None:
    path = GOLDEN / f"net_{case}.txt"
    text = "\n".join(f"## {title}\n" + "".join(line + "\n" for line in lines)
                     for title, lines in sections(case).items())
    if os.environ.get("LADLE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with LADLE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


@pytest.mark.parametrize("case", list(CASES))
def test_every_rendered_line_passes_the_man_page_checker(case: str) -> None:
    for title, lines in sections(case).items():
        assert check_rendering(lines) == [], title


# The jail's parameters ---------------------------------------------------------------------------

def jail_params(spec: RuntimeSpec) -> list[str]:
    line = next(x for x in render(start_plan(spec, ON_EXIT, None, ROOT, EXT)) if x.startswith("jail -c "))
    return shlex.split(line)[2:]


def test_a_bridge_pot_gets_a_vnet_and_the_jail_end_of_its_epair() -> None:
    params = jail_params(public())
    assert params[-2:] == ["vnet=new", "vnet.interface=ldp0a1b2c3d4e5f"]
    assert not [p for p in params if p.startswith(("ip4", "ip6"))]
    assert pot_end("ldv0a1b2c3d4e5f") == "ldp0a1b2c3d4e5f"
    with pytest.raises(UsageError, match="invalid host-side interface name"):
        pot_end("ldv0a1b2c3d4e5f0")  # 16 characters: more than IFNAMSIZ holds


def test_an_alias_pot_has_jail8_add_its_addresses_and_a_family_without_any_disabled() -> None:
    assert jail_params(alias())[-2:] == ["ip4.addr=vtnet0|192.0.2.20/32", "ip6.addr=vtnet1|2001:db8::20/128"]
    only4 = alias()
    only4.net["aliases"] = only4.net["aliases"][:1]
    assert jail_params(replace(only4, stack="ipv4"))[-2:] == ["ip4.addr=vtnet0|192.0.2.20/32", "ip6=disable"]
    with pytest.raises(UsageError, match="needs at least one address"):
        jailparams.network_params("alias", "ipv4", NetSpec(type="alias", aliases=[]))


# Applying the plans on the faked host -------------------------------------------------------------

@pytest.fixture
def net(freebsd: FreeBSDPots) -> FreeBSDNet:
    """The freebsd fixture's pots on a host whose network is modelled."""
    runner = FreeBSDNet()
    freebsd.runner = runner
    freebsd.host = FreeBSDHost(runner, str(freebsd.root))
    freebsd.ctx = Context(runner, freebsd.store, lambda: freebsd.monitor)
    return runner


def start(pots: FreeBSDPots, spec: RuntimeSpec) -> None:
    Executor(pots.ctx).run("start", f"pot:{spec.name}", pots.host.start_plan(spec))


def stop(pots: FreeBSDPots, spec: RuntimeSpec) -> None:
    Executor(pots.ctx).run("stop", f"pot:{spec.name}", pots.host.stop_plan(spec, RUNNING), on_crash="finish")
    pots.wait_ended(spec.name)


def test_pots_share_one_bridge_that_goes_with_the_last_and_leave_nothing(freebsd: FreeBSDPots,
                                                                          net: FreeBSDNet) -> None:
    web = here(public(), freebsd)
    api = here(public("api", "ldv111111111111", NetAddress(**{**V4, "address": "10.192.0.6"}),
                      NetAddress(**{**V6, "address": "fd5a:17c0:3e2b::6"})), freebsd)
    start(freebsd, web)
    start(freebsd, api)
    assert net.lines.count("ifconfig bridge create name ldbr0 descr 'ladle network public' group ladle") == 1
    assert net.ifs["ldbr0"].members == ["ldv0a1b2c3d4e5f", "ldv111111111111"]
    assert net.ladle_interfaces() == ["ldbr0", "ldp0a1b2c3d4e5f", "ldp111111111111", "ldv0a1b2c3d4e5f",
                                      "ldv111111111111"]  # each epair's two ends renamed: no epairN left
    assert set(net.anchors) == {NAT_ANCHOR, "ladle/web", "ladle/api"}
    assert "nat pass on vtnet0 inet from 10.192.0.0/10 to ! 10.192.0.0/10 -> (vtnet0:0)" in net.anchors[NAT_ANCHOR]
    assert ("rdr pass on vtnet0 inet proto tcp from any to (vtnet0) port 8080 -> 10.192.0.6 port 80"
            in net.anchors["ladle/api"])
    assert "ifconfig -j api ldp111111111111 inet 10.192.0.6/10" in net.lines
    assert (Path(web.root[0].source) / "etc" / "hosts").read_text() == web.net["hosts"]
    stop(freebsd, web)
    assert net.ladle_interfaces() == ["ldbr0", "ldp111111111111", "ldv111111111111"]
    assert set(net.anchors) == {NAT_ANCHOR, "ladle/api"}
    stop(freebsd, api)
    assert net.ladle_interfaces() == [] and net.anchors == {}


def test_a_failed_jail_create_undoes_the_epair_the_rules_and_the_bridge(freebsd: FreeBSDPots, net: FreeBSDNet) -> None:
    net.answer(r"^jail -c ", Fail("jail: jail_set: Operation not permitted"))
    with pytest.raises(CommandFailed, match="Operation not permitted"):
        start(freebsd, here(private(), freebsd))
    assert net.ladle_interfaces() == [] and net.anchors == {}
    assert freebsd.store.get("runs", pot="db") is None


def test_an_epair_is_named_as_it_is_made_and_a_taken_unit_is_skipped(freebsd: FreeBSDPots,
                                                                     net: FreeBSDNet) -> None:
    """The a-side has its name from the ifconfig that makes the pair, so no crash can leave a pair
    nothing knows the name of; another tool's epair on the unit the name hashes to is left
    alone, and so is a unit ifconfig finds taken (a pair renamed since)."""
    first = epair_units("ldv0a1b2c3d4e5f")[0]
    net.ifs[f"epair{first}a"] = Interface(f"epair{first}a", ["epair"], peer=f"epair{first}b")
    net.ifs[f"epair{first}b"] = Interface(f"epair{first}b", ["epair"], peer=f"epair{first}a")
    net.answer(rf"^ifconfig epair{first + 1} create ", Fail("ifconfig: SIOCIFCREATE2 (epair): File exists"))
    start(freebsd, here(public(), freebsd))
    made = [x for x in net.lines if x.startswith("ifconfig epair")]
    argv = "create name ldv0a1b2c3d4e5f descr 'ladle pot web' group ladle up"
    assert made == [f"ifconfig epair{first}a", f"ifconfig epair{first + 1}a", f"ifconfig epair{first + 1} {argv}",
                    f"ifconfig epair{first + 1}a", f"ifconfig epair{first + 2}a", f"ifconfig epair{first + 2} {argv}",
                    f"ifconfig epair{first + 2}b name ldp0a1b2c3d4e5f"]
    assert f"epair{first}a" in net.ifs and net.ifs["ldv0a1b2c3d4e5f"].peer == "ldp0a1b2c3d4e5f"


def test_a_pair_made_but_not_named_and_a_stale_one_are_destroyed(freebsd: FreeBSDPots, net: FreeBSDNet) -> None:
    net.ifs["ldv0a1b2c3d4e5f"] = Interface("ldv0a1b2c3d4e5f", ["epair", "ladle"], peer="ldp0a1b2c3d4e5f")
    net.ifs["ldp0a1b2c3d4e5f"] = Interface("ldp0a1b2c3d4e5f", ["epair"], peer="ldv0a1b2c3d4e5f")  # a crash left it
    first = epair_units("ldv0a1b2c3d4e5f")[0]

    def made_then_failed(argv: list[str], input: bytes | None) -> str:
        if argv[:3] == ["ifconfig", f"epair{first}", "create"]:
            FreeBSDNet.model(net, argv[:3], input)  # the pair is made, its rename fails
            raise net.fail(argv, "ioctl SIOCSIFNAME (set name): Invalid argument")
        return FreeBSDNet.model(net, argv, input)

    net.model = made_then_failed  # type: ignore[method-assign]
    with pytest.raises(CommandFailed, match="Invalid argument"):
        start(freebsd, here(public(), freebsd))
    assert "ifconfig ldv0a1b2c3d4e5f destroy" in net.lines and f"ifconfig epair{first}a destroy" in net.lines
    assert net.ladle_interfaces() == [] and net.anchors == {}


def test_a_start_killed_after_its_epair_is_undone_by_name(tmp_path: Path) -> None:
    """Killed between the pair and the b-side's rename: recovery undoes the started VnetUp with
    VnetDown, which destroys the a-side by name and the b-side with it."""
    runner = FreeBSDNet()
    up = next(s for s in start_plan(public(), ON_EXIT, None, str(tmp_path), EXT) if isinstance(s, VnetUp))
    runner.model(up._epair_argv(epair_units("ldv0a1b2c3d4e5f")[0]), None)  # what ran before the kill
    assert runner.ladle_interfaces() == [f"epair{epair_units('ldv0a1b2c3d4e5f')[0]}b", "ldv0a1b2c3d4e5f"]
    for undo in up.inverse():
        Step.from_json(undo.to_json()).apply(Context(runner))
    assert runner.ladle_interfaces() == []


def test_a_stop_after_a_crash_tolerates_what_is_gone_already(freebsd: FreeBSDPots, net: FreeBSDNet) -> None:
    """The jail, its epair and rules went (a reboot, or a stop that crashed half way): the stop
    plan runs to the end, and destroys what is left (here the bridge)."""
    net.ifs["ldbr0"] = Interface("ldbr0", ["bridge", "ladle"])
    net.answer(r"^jls ", Fail('jls: jail "web" not found'))
    net.answer(r"^jail -f - -q -r web$", Fail('jail: "web" not found'))
    net.answer(r"^umount ", Fail("umount: not a file system root directory"))
    Executor(freebsd.ctx).run("stop", "pot:web", stop_plan(here(public(), freebsd), RUNNING, str(freebsd.root)),
                              on_crash="finish")
    assert net.ladle_interfaces() == []
    assert net.lines[net.lines.index("pfctl -a ladle/web -F nat"):][:4] == [
        "pfctl -a ladle/web -F nat", "pfctl -a ladle/web -F rules", "ifconfig ldv0a1b2c3d4e5f destroy",
        "ifconfig ldv0a1b2c3d4e5f"]


def test_the_undo_of_a_start_rebuilt_from_the_intent_log_removes_what_it_made(tmp_path: Path) -> None:
    """A start killed after its epair: recovery rebuilds the steps from their JSON and undoes."""
    runner = FreeBSDNet()
    spec = public()
    steps = start_plan(spec, ON_EXIT, None, str(tmp_path), EXT)
    for step in [*steps, *stop_plan(spec, RUNNING, str(tmp_path))]:
        assert Step.from_json(step.to_json()) == step
    done = [Step.from_json(s.to_json()) for s in steps if isinstance(s, VnetUp | PfAnchorLoad)]
    for step in done:
        step.apply(Context(runner))
    assert runner.ladle_interfaces() and runner.anchors
    for step in reversed(done):
        for undo in step.inverse():
            Step.from_json(undo.to_json()).apply(Context(runner))
    assert runner.ladle_interfaces() == [] and runner.anchors == {}


def test_bridges_change_under_one_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop that finds its bridge empty must not destroy it under a start attaching to it."""
    monkeypatch.setenv("LADLE_LOCK_TIMEOUT", "0")
    spec = public()
    up = next(s for s in start_plan(spec, ON_EXIT, None, str(tmp_path), EXT) if isinstance(s, VnetUp))
    with locks.hold(str(tmp_path), "freebsd-net"):
        with pytest.raises(Busy, match="freebsd net is busy"):
            up.apply(Context(FreeBSDNet()))
        with pytest.raises(Busy):
            VnetDown(str(tmp_path), "ldbr0", "ldv0a1b2c3d4e5f").apply(Context(FreeBSDNet()))


def test_the_nat_anchor_stays_while_another_ladle_bridge_is_up(tmp_path: Path) -> None:
    runner = FreeBSDNet(anchors={NAT_ANCHOR: "nat ...\n"})
    runner.ifs["ldbr320"] = Interface("ldbr320", ["bridge", "ladle"], members=["ldv99aa00bb11cc"])
    runner.ifs["ldbr0"] = Interface("ldbr0", ["bridge", "ladle"])
    VnetDown(str(tmp_path), "ldbr0", "ldv0a1b2c3d4e5f").apply(Context(runner))
    assert "ldbr0" not in runner.ifs and NAT_ANCHOR in runner.anchors
    assert "ifconfig ldbr320 destroy" not in runner.lines


def test_without_pf_there_is_nothing_to_flush() -> None:
    runner = FreeBSDNet().answer(r"^pfctl ", Fail("pfctl: /dev/pf: No such file or directory"))
    PfAnchorFlush("ladle/web").apply(Context(runner))
    other = FreeBSDNet().answer(r"^pfctl ", Fail("pfctl: DIOCXBEGIN: Operation not permitted"))
    with pytest.raises(CommandFailed, match="Operation not permitted"):
        PfAnchorFlush("ladle/web").apply(Context(other))


def test_no_default_route_means_no_nat_nor_export_on_an_external_interface(freebsd: FreeBSDPots,
                                                                             net: FreeBSDNet) -> None:
    net.routes = {}
    assert freebsd.host.external_interfaces() == {}
    lines = render(freebsd.host.start_plan(here(public(), freebsd)))
    rules = lines[lines.index("pfctl -a ladle/web -f - <<'EOF'") + 1:]
    assert not [x for x in lines if x.startswith(f"pfctl -a {NAT_ANCHOR}")]
    assert rules[0] == "rdr pass on lo0 inet proto tcp from any to 127.0.0.1 port 8080 tag LADLE_HAIRPIN -> " \
                       "10.192.0.5 port 80"
    assert FreeBSDHost(net, ROOT, offline=True).external_interfaces() == {"inet": "DEFAULT-ROUTE-IF",
                                                                         "inet6": "DEFAULT-ROUTE-IF"}


def test_a_private_pot_reaches_its_bridge_and_the_outside_only() -> None:
    lines = render(start_plan(private(), ON_EXIT, None, ROOT, EXT))
    rules = lines[lines.index("pfctl -a ladle/db -f - <<'EOF'") + 1:]
    rules = rules[:rules.index("EOF")]
    assert rules[-5:] == ["pass quick on ldbr320 inet from 10.192.5.0/28 to 10.192.5.0/28",
                          "block drop in quick on ldbr320 inet from 10.192.5.6 to 10.192.0.0/10",
                          "block drop out quick on ldbr320 inet from 10.192.0.0/10 to 10.192.5.6",
                          "pass in quick on ldbr320 inet from 10.192.5.6 to any",
                          "pass out quick on ldbr320 inet from any to 10.192.5.6"]
    public_rules = render(start_plan(public(), ON_EXIT, None, ROOT, EXT))
    assert not [x for x in public_rules if x.startswith("block drop") and "ldbr0" in x]


def test_a_pot_cannot_send_from_another_pots_address_on_its_epair() -> None:
    lines = render(start_plan(public(), ON_EXIT, None, ROOT, EXT))
    i = lines.index("pass in quick on ldv0a1b2c3d4e5f inet from 10.192.0.5 to any")
    assert lines[i:i + 4] == ["pass in quick on ldv0a1b2c3d4e5f inet from 10.192.0.5 to any",
                              "pass in quick on ldv0a1b2c3d4e5f inet6 from { fd5a:17c0:3e2b::5, fe80::/10 } to any",
                              "block drop in quick on ldv0a1b2c3d4e5f all",
                              "pass out quick on ldv0a1b2c3d4e5f all"]


# Aliases -----------------------------------------------------------------------------------------

def test_an_alias_the_interface_has_already_is_refused_and_never_removed(freebsd: FreeBSDPots,
                                                                          net: FreeBSDNet) -> None:
    """jail -c would fail on it, and the undo would then remove the host's own address."""
    net.ifs["vtnet1"] = Interface("vtnet1", addresses=["inet6 2001:db8::20 prefixlen 64"])
    with pytest.raises(UsageError, match="vtnet1 has address 2001:db8::20 already"):
        start(freebsd, here(alias(), freebsd))
    assert net.ifs["vtnet1"].addresses == ["inet6 2001:db8::20 prefixlen 64"]
    assert not [x for x in net.lines if "-alias" in x or x.startswith("jail -c")]


def test_a_stopped_alias_pot_leaves_no_address(freebsd: FreeBSDPots, net: FreeBSDNet) -> None:
    net.ifs["vtnet1"] = Interface("vtnet1")
    spec = here(alias(), freebsd)
    start(freebsd, spec)
    net.ifs["vtnet0"].addresses.append("inet 192.0.2.20 netmask 0xffffffff")  # as jail(8) adds them
    net.ifs["vtnet1"].addresses.append("inet6 2001:db8::20 prefixlen 128")
    jail = next(x for x in net.lines if x.startswith("jail -c "))
    assert jail.endswith(" exec.clean 'ip4.addr=vtnet0|192.0.2.20/32' 'ip6.addr=vtnet1|2001:db8::20/128'")
    net.ifs["vtnet1"].addresses.clear()  # jail -r removed this one itself: fine too
    stop(freebsd, spec)
    assert net.ifs["vtnet0"].addresses == ["inet 192.0.2.10 netmask 0xffffff00"] and not net.ifs["vtnet1"].addresses
    with pytest.raises(CommandFailed):  # an address that stays is an error
        net.answer(r"-alias$", Fail("ifconfig: ioctl (SIOCDIFADDR): Operation not permitted"))
        net.ifs["vtnet0"].addresses.append("inet 192.0.2.20 netmask 0xffffffff")
        removals = [s for s in stop_plan(spec, RUNNING) if type(s).__name__ == "AliasRemove"]
        Executor(freebsd.ctx).run("stop", "pot:mail", removals, on_crash="finish")


# /etc/hosts and resolv.conf ------------------------------------------------------------------------

def test_no_hosts_file_is_written_without_its_text_or_on_a_read_only_etc() -> None:
    spec = public()
    assert hosts_plan(replace(spec, net={**spec.net, "hosts": None})) == []
    read_only = make_spec("app", root=[Mount("bind", "/b", "/", ("ro",))], net=spec.net, network="public-bridge")
    assert hosts_plan(read_only) == []


def test_the_given_dns_servers_replace_the_hosts_resolv_conf() -> None:
    lines = render(start_plan(private(), ON_EXIT, None, ROOT, EXT))
    assert not [x for x in lines if x.startswith("cp -f /etc/resolv.conf")]
    i = lines.index(f"cat > {ROOT}/zfs/pots/db/etc/resolv.conf <<'EOF'")
    assert lines[i + 1:i + 3] == ["nameserver 10.192.5.1", "EOF"]
    assert i > next(i for i, x in enumerate(lines) if x.startswith("jail -c "))


# The checker -------------------------------------------------------------------------------------

GOOD = [
    "ifconfig bridge create name ldbr0 descr 'ladle network public' group ladle",
    "ifconfig ldbr0 inet 10.192.0.1/10", "ifconfig ldbr0 inet6 no_dad -ifdisabled", "ifconfig ldbr0 up",
    "ifconfig ldbr0 inet6 fd5a::1/64", "ifconfig ldbr0 addm ldv0a1b2c3d4e5f", "ifconfig ldv0a1b2c3d4e5f destroy",
    "ifconfig epair create", "ifconfig epair5 create name ldv1 descr 'ladle pot web' group ladle up",
    "ifconfig epair5b name ldp1", "ifconfig -g ladle",
    "ifconfig -j web lo0 inet 127.0.0.1/8 up", "ifconfig em0 inet 192.0.2.1 -alias",
    "ifconfig em0 inet6 2001:db8::1 prefixlen 64 -alias", "ifconfig epair0b vnet web", "ifconfig epair0b -vnet web",
    "route -j web add -inet default 10.0.0.1", "route -j web add -inet6 default fd00::1", "route -n get -inet default",
    "route -n get -inet6 default", "sysctl net.inet.ip.forwarding=1", "sysctl net.inet6.ip6.forwarding=1",
    "pfctl -a ladle/web -f -", "pfctl -a ladle/web -F nat", "pfctl -a ladle/web -F rules", "pfctl -s info",
]
BAD = [
    ("ifconfig ldbr0 inet 10.192.0.300/10", "invalid inet address"),
    ("ifconfig ldbr0 inet6 fd5a::g/64", "invalid inet6 address"),
    ("ifconfig ldbr0 no_dad", "needs the inet6 keyword"),
    ("ifconfig ldbr0 nodad", "unknown ifconfig parameter 'nodad'"),
    ("ifconfig ldbr0 addm", "addm needs a value"),
    ("ifconfig ldv0a1b2c3d4e5f00 up", "longer than 15"),
    ("ifconfig ldbr create", "needs a cloner"),
    ("ifconfig -Z ldbr0 up", "unknown option -Z"),
    ("route -j web add default", "needs a destination and a gateway"),
    ("route -j web add -inet6 default 10.0.0.1", "invalid inet6 address"),
    ("route frobnicate", "route needs one of"),
    ("sysctl net.inet.ip.forwarding=yes", "takes 0|1"),
    ("sysctl kern.securelevel=-1", "unknown or unchecked sysctl"),
    ("pfctl -a ladle/web -F all", "policy: -F all"),
    ("pfctl -a ladle/web -F states", "policy: -F states"),
    ("pfctl -a ladle/web -F frob", "unknown -F modifier"),
    ("pfctl -a ladle/web -f rules.conf", "'-' or an absolute path"),
    ("pfctl", "at least one option"),
]


@pytest.mark.parametrize("line", GOOD)
def test_checker_accepts_documented_network_lines(line: str) -> None:
    assert check_line(line) == []


@pytest.mark.parametrize(("line", "problem"), BAD)
def test_checker_rejects_undocumented_network_lines(line: str, problem: str) -> None:
    problems = check_line(line)
    assert any(problem in p for p in problems), problems


def test_checker_reads_pf_rules() -> None:
    good = ['ext_if = "vtnet0"', "nat pass on $ext_if inet from 10.0.0.0/8 to ! 10.0.0.0/8 -> ($ext_if:0)",
            "rdr pass on lo0 inet proto tcp from any to 127.0.0.1 port 8080 tag T -> 10.0.0.5 port 80",
            "nat on ldbr0 inet from any to 10.0.0.5 tagged T -> 10.0.0.1",
            "pass in quick on ldv1 inet6 from { fd00::5, fe80::/10 } to any", "block drop in quick on ldv1 all"]
    assert check_pf_conf(good) == []
    bad = {"nat on em0 inet from 10.0.0.0/8 to any": "needs '-> address'",
           "rdr pass on em0 inet proto tcp from any to (em0) port 70000 -> 10.0.0.5 port 80": "bad port",
           "pass in quick on ldv1 inet from fd00::5 to any": "is not an inet address",
           "pass in quick on ldv1 inet from 10.0.0.5": "expected 'to'",
           "match in all": "unknown or unchecked statement"}
    for rule, problem in bad.items():
        assert any(problem in p for p in check_pf_conf([rule])), rule
    assert any("translation after filtering" in p
               for p in check_pf_conf(["pass quick on ldv1 all", "nat on em0 inet from any to any -> (em0)"]))
    assert check_rendering(["pfctl -a ladle/x -f - <<'EOF'", "pass quick on ldv1 al", "EOF"]) != []


def test_steps_and_specs_are_json() -> None:
    for case in CASES.values():
        spec = case()
        json.dumps(spec.net)
        for step in [*start_plan(spec, ON_EXIT, None, ROOT, EXT), *stop_plan(spec, RUNNING, ROOT)]:
            assert Step.from_json(step.to_json()) == step


# Through the engine: the verbs of every network type ---------------------------------------------

class Transcript(FreeBSDNet):
    """The modelled host, keeping every command in one ordered transcript."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def run(self, argv: list[str], *, input: bytes | None = None, check: bool = True) -> str:
        self.log.append(shlex.join(argv) + (" <<'EOF'" if input else ""))
        if input:
            self.log += [*input.decode().rstrip("\n").split("\n"), "EOF"]
        return super().run(argv, input=input, check=check)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, Transcript]]:
    runner = Transcript()
    with freebsd_engine(tmp_path, monkeypatch, runner, runner.log) as eng:
        yield eng, runner


def test_every_network_verb_renders_its_exact_freebsd_commands(engine: tuple[Engine, Transcript],
                                                               tmp_path: Path) -> None:
    """create, start, stop of a public-bridge pot with an export beside another, of a private
    bridge's pot and of an alias pot, through the engine; the host's state after each stop."""
    eng, runner = engine
    for name in ("web", "api", "db", "mail"):
        for sub in ("bin", "etc"):
            (tmp_path / "zfs" / "pots" / name / sub).mkdir(parents=True)
    bridge = Request(type="public-bridge", stack="dual")
    runner.ifs["lo"] = Interface("lo")  # the engine checks an alias's interface on this (Linux) host
    verbs: list[tuple[str, Callable[[], object]]] = [
        ("init --storage zfs --dataset zroot/ladle", lambda: setup.init(eng, "zfs", "zroot/ladle")),
        ("create-base -r 14.2", lambda: bases.create_base(eng, "14.2", None, None)),
        ("create -p web -b 14.2 -N public-bridge -S dual -e 80:8080", lambda: pots.create(
            eng, "web", "14.2", "single", None, None, "nginx", bridge, ports=["80:8080"])),
        ("start web", lambda: lifecycle.start(eng, "web")),
        ("create -p api -b 14.2 -N public-bridge -S dual (web's /etc/hosts is rewritten)",
         lambda: running(runner, lambda: pots.create(eng, "api", "14.2", "single", None, None, "nginx", bridge))),
        ("start api", lambda: running(runner, lambda: lifecycle.start(eng, "api"), start=True)),
        ("stop web", lambda: running(runner, lambda: lifecycle.stop(eng, "web"))),
        ("stop api", lambda: running(runner, lambda: lifecycle.stop(eng, "api"))),
        ("create-private-bridge -B backend -S 6", lambda: networks.create_bridge(eng, "backend", 6, None)),
        ("create -p db -b 14.2 -N private-bridge -B backend -d 10.192.0.1", lambda: pots.create(
            eng, "db", "14.2", "single", None, None, "nginx",
            Request(type="private-bridge", bridge="backend", stack="ipv4", dns=["10.192.0.1"]))),
        ("start db", lambda: lifecycle.start(eng, "db")),
        ("stop db", lambda: running(runner, lambda: lifecycle.stop(eng, "db"))),
        ("create -p mail -b 14.2 -N alias -i 'lo|192.0.2.20'", lambda: pots.create(
            eng, "mail", "14.2", "single", None, None, "nginx", Request(type="alias", addresses=["lo|192.0.2.20"],
                                                                         stack="ipv4"))),
        ("start mail", lambda: lifecycle.start(eng, "mail")),
        ("stop mail", lambda: running(runner, lambda: lifecycle.stop(eng, "mail"))),
    ]
    out = []
    for title, verb in verbs:
        first = len(runner.log)
        verb()
        out.append(f"## {title}\n" + "".join(f"{line}\n" for line in runner.log[first:]))
        if title.startswith("stop"):
            out[-1] += f"# left: {' '.join(runner.ladle_interfaces()) or 'no interface'}; " \
                       f"{' '.join(sorted(runner.anchors)) or 'no pf anchor'}\n"
    ula = networks.prefix6(eng).split("::")[0]  # random at init (RFC 4193)
    text = untoken("\n".join(out).replace(str(tmp_path), ROOT).replace(ula, "fd00:ULA"))
    for name in ("web", "api", "db", "mail"):  # a hash of the state root's path and the pot
        veth = netspec.veth(eng, name)
        text = re.sub(rf"\bepair{epair_units(veth)[0]}\b", f"epair{name.upper()}", text)
        text = re.sub(rf"\bepair{epair_units(veth)[0]}([ab])\b", rf"epair{name.upper()}\1", text)
        text = text.replace(veth[3:], name.ljust(12, "0"))
    golden = GOLDEN / "net_verbs.txt"
    if os.environ.get("LADLE_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert check_rendering([line.split("  #")[0] for line in runner.log]) == []
    assert runner.ladle_interfaces() == [] and runner.anchors == {}
    assert "# left: ldbr0 ldp" in text  # web's stop left the bridge to api
    web_hosts = (tmp_path / "zfs" / "pots" / "web" / "etc" / "hosts").read_text()
    assert "10.192.0.3 api\n" in web_hosts  # rewritten when api was created, web running
    assert (tmp_path / "zfs" / "pots" / "db" / "etc" / "resolv.conf").read_text() == "nameserver 10.192.0.1\n"


def running(runner: Transcript, verb: Callable[[], object], start: bool = False) -> object:
    """While `verb` runs, the jails exist (for a start: the other pots' jails, not its own)."""
    runner.answer(r"^jls ", "7\n")
    runner.answer(r"^jls name$", "web api db mail\n")
    if start:
        runner.answer(r"^jls -j api ", NOT_RUNNING)
    try:
        return verb()
    finally:
        runner.answer(r"^jls ", NOT_RUNNING)


def test_a_dry_run_from_another_host_plans_a_bridge_pot_and_asks_this_one_nothing(
        engine: tuple[Engine, Transcript], tmp_path: Path) -> None:
    """`ladle --host freebsd --dry-run start` on Linux: the whole plan, with the external
    interface it cannot read shown as a placeholder, and no FreeBSD command run here."""
    eng, _ = engine
    setup.init(eng, "zfs", "zroot/ladle")
    bases.create_base(eng, "14.2", None, None)
    (tmp_path / "zfs" / "pots" / "web" / "etc").mkdir(parents=True)
    pots.create(eng, "web", "14.2", "single", None, None, "nginx", Request(type="public-bridge", stack="ipv4"),
                ports=["80:8080"])
    cli = offline_cli(tmp_path, tmp_path)
    proc = cli("start", "web")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert check_rendering([x for x in lines if not x.startswith("mkdir -m")]) == []
    assert "rdr pass on DEFAULT-ROUTE-IF inet proto tcp from any to (DEFAULT-ROUTE-IF) port 8080 -> 10.192.0.2 " \
           "port 80" in lines
    assert f"jail -c name=web path={tmp_path}/zfs/pots/web" in next(x for x in lines if x.startswith("jail -c"))
    assert not (tmp_path / "trapped.log").exists()
    assert eng.store.get("runs", pot="web") is None


def test_a_dual_stack_pot_gives_a_bridge_an_ipv4_pot_made_its_ipv6_gateway(freebsd: FreeBSDPots,
                                                                          net: FreeBSDNet) -> None:
    v4only = here(public("api", "ldv111111111111", NetAddress(**{**V4, "address": "10.192.0.6"}), None), freebsd)
    start(freebsd, v4only)
    assert net.ifs["ldbr0"].addresses == ["inet 10.192.0.1 netmask /10"]
    start(freebsd, here(public(), freebsd))
    assert net.ifs["ldbr0"].addresses == ["inet 10.192.0.1 netmask /10", "inet6 fd5a:17c0:3e2b::1 prefixlen 64"]
    assert net.lines.count("ifconfig ldbr0 inet 10.192.0.1/10") == 1


def test_a_host_without_pf_is_told_what_to_do_and_left_clean(freebsd: FreeBSDPots, net: FreeBSDNet) -> None:
    net.answer(r"^pfctl .* -f -$", Fail("pfctl: /dev/pf: No such file or directory"))
    net.answer(r"^pfctl .* -F ", Fail("pfctl: /dev/pf: No such file or directory"))
    with pytest.raises(HostError) as e:
        start(freebsd, here(public(), freebsd))
    assert str(e.value) == ("bridge networks need pf for their NAT and port exports: load it (kldload pf, and "
                            "pf_enable=YES in /etc/rc.conf) with ladle's anchors in /etc/pf.conf")
    assert net.ladle_interfaces() == []


def test_a_failure_inside_the_jail_removes_the_jail_then_the_rules_and_the_interfaces(freebsd: FreeBSDPots,
                                                                                      net: FreeBSDNet) -> None:
    net.answer(r"^route -j web add -inet6 ", Fail("route: writing to routing socket: Network is unreachable"))
    with pytest.raises(CommandFailed, match="Network is unreachable"):
        start(freebsd, here(public(), freebsd))
    after = net.lines[net.lines.index("route -j web add -inet6 default fd5a:17c0:3e2b::1") + 1:]
    assert after[:4] == ["jail -f - -q -r web", f"umount {freebsd.root}/trees/web/dev", "pfctl -a ladle/web -F nat",
                         "pfctl -a ladle/web -F rules"]
    assert net.ladle_interfaces() == [] and net.anchors == {}
