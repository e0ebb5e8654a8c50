"""Host-side network steps of a Linux pot's start and stop (`RuntimeSpec.net`).

They run between `LinuxSandbox` and `LinuxEnter`: the pot's pid 1 waits in its new network
namespace, and the monitor does the work (`net` request: it imports pyroute2 once for all the
pots, not every command, and opens the namespace of its own child while its start time matches).
Bridges, the nftables table and their removal are shared between pots: all of it is done under
one host-wide flock per network namespace, so 50 pots starting at once neither make a bridge twice
nor remove one that a pot is joining. What a pot set up is recorded in `<run dir>/net.json` until
its stop has removed it, so that `ladle gc` can remove what a crash left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ladle.errors import HostError
from ladle.hosts.linux.steps import PID1, _ask
from ladle.plan.steps import Context, Step

LOCK_ROOT = "/run/ladle"  # host-wide: bridges and the table belong to the namespace, not to a state root
RECORD = "net.json"
IFA_NODAD = " nodad"


def site() -> str:
    """Where pyroute2 is installed, for the monitor, which runs without site-packages (found
    without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        raise HostError("bridge networking needs pyroute2 (pip install pyroute2)")
    return os.path.dirname(next(iter(spec.submodule_search_locations)))


def _families(net: dict[str, Any]) -> list[dict[str, Any]]:
    return [net[f] for f in ("ipv4", "ipv6") if net.get(f)]


@contextlib.contextmanager
def net_lock() -> Iterator[None]:
    """The lock of this network namespace's ladle bridges and table."""
    from ladle.state import locks

    ino = os.stat("/proc/self/ns/net").st_ino
    with locks.hold(LOCK_ROOT, f"net-{ino}"):
        yield


def _record_path(run_dir: str) -> str:
    return os.path.join(run_dir, RECORD)


def record(run_dir: str, net: dict[str, Any]) -> None:
    os.makedirs(run_dir, exist_ok=True)
    tmp = _record_path(run_dir) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(net, f)
    os.replace(tmp, _record_path(run_dir))


def recorded(run_dir: str) -> dict[str, Any] | None:
    try:
        with open(_record_path(run_dir)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def bridge_up(net: dict[str, Any], pot_netns: int) -> None:
    """Under the lock: the table and the pot's elements, the bridge, forwarding, the veth pair."""
    from ladle.hosts.linux import netlink, nft

    nft.add(net)
    with netlink.socket() as ipr:
        bridge = net["bridge"]
        netlink.ensure_bridge(ipr, bridge, _families(net))
        netlink.sysctl("net/ipv4/ip_forward", "1")
        if net.get("ipv6"):
            netlink.sysctl("net/ipv6/conf/all/forwarding", "1")
        netlink.sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")
        netlink.add_veth(ipr, net["veth"], bridge, pot_netns, netlink.pot_mac(_families(net)[0]["address"]))


def up(net: dict[str, Any], pot_netns: int) -> None:
    """In the monitor: the pot on its bridge, and inside its namespace eth0's addresses and
    routes; on failure, nothing of it is left."""
    from ladle.hosts.linux import netlink

    try:
        with net_lock():
            bridge_up(net, pot_netns)
        with netlink.socket(pot_netns) as inner:
            netlink.configure_pot(inner, _families(net))
    except BaseException:
        down(net)
        raise


def down(net: dict[str, Any]) -> None:
    with net_lock():
        teardown(net)


def teardown(net: dict[str, Any]) -> None:
    """Under the lock: the pot's veth and exports; the bridge when no pot is left on it, the
    table when no bridge is left. Idempotent."""
    from ladle.hosts.linux import netlink, nft

    with netlink.socket() as ipr:
        netlink.remove_link(ipr, net["veth"], "veth")
        gone = not netlink.bridge_ports(ipr, net["bridge"])
        if gone:
            netlink.remove_link(ipr, net["bridge"], "bridge")
        nft.remove(net, gone, last=not netlink.links(ipr, "ldbr"))


def _ip_addr(address: dict[str, Any], key: str, dev: str) -> str:
    nodad = IFA_NODAD if ":" in address[key] else ""
    return f"ip addr add {address[key]}/{address['prefixlen']} dev {dev}{nodad}"


@dataclass
class LinuxBridgeNet(Step):
    """The pot on its bridge: the bridge (if it is the first pot), a veth pair with `eth0` in the
    pot, its addresses and default routes, and its nftables elements (NAT, exports)."""

    pot: str
    run_dir: str
    net: dict[str, Any]

    def render(self) -> list[str]:
        from ladle.hosts.linux import netlink, nft

        net, bridge, veth = self.net, self.net["bridge"], self.net["veth"]
        inside = f"nsenter --target {PID1} --net "
        lines = [f"# pot {self.pot}: under ladle's network lock ({LOCK_ROOT}/locks/net-NETNS.lock)",
                 "nft -f - <<'EOF'  # the table made, or its rules renewed, with the pot's elements",
                 *nft.ruleset_lines(), *nft.add_lines(net), "EOF",
                 f"ip link show {bridge} >/dev/null 2>&1 || "
                 f"ip link add {bridge} address {netlink.bridge_mac(bridge)} type bridge",
                 *(_ip_addr(a, "gateway", bridge) + "  # unless it has it" for a in _families(net)),
                 f"ip link set {bridge} up",
                 "sysctl -w net.ipv4.ip_forward=1" + (" net.ipv6.conf.all.forwarding=1" if net.get("ipv6") else ""),
                 f"sysctl -w net.ipv4.conf.{bridge}.route_localnet=1",
                 f"ip link add {veth} type veth peer name {netlink.POT_IF} address "
                 f"{netlink.pot_mac(_families(net)[0]['address'])} netns {PID1}",
                 f"ip link set {veth} master {bridge} up",
                 "# then, without the lock:"]
        lines += [inside + _ip_addr(a, "address", netlink.POT_IF) for a in _families(net)]
        lines.append(inside + f"ip link set {netlink.POT_IF} up")
        lines += [inside + f"ip {'-6 ' if ':' in a['gateway'] else ''}route add default via {a['gateway']}"
                  for a in _families(net)]
        return lines

    def apply(self, ctx: Context) -> None:
        record(self.run_dir, self.net)  # first: a crash from here on is found by `ladle gc`
        try:
            _ask(ctx, self.pot, "net", action="up", net=self.net, site=site())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(_record_path(self.run_dir))
            raise

    def inverse(self) -> list[Step]:
        return [LinuxNetDown(self.pot, self.run_dir, self.net)]


@dataclass
class LinuxNetDown(Step):
    """Remove the pot's veth and exports, and its bridge and the table if no pot needs them."""

    pot: str
    run_dir: str
    net: dict[str, Any]

    def render(self) -> list[str]:
        from ladle.hosts.linux import nft

        bridge = self.net["bridge"]
        lines = [f"# pot {self.pot}: under ladle's network lock",
                 f"ip link del {self.net['veth']} 2>/dev/null || true  # gone with the pot's namespace already"]
        for addr in _families(self.net):
            for port in self.net.get("ports") or []:
                lines.append(f"nft delete element inet ladle {nft.ports_map(addr['address'])} "
                             f"'{{ {nft.port_key(port)} }}'")
        lines += [f"# if no pot is left on {bridge}:",
                  f"ip link del {bridge}",
                  f"nft delete element inet ladle intra '{{ \"{bridge}\" . \"{bridge}\" }}'",
                  "# if no ladle bridge is left:", "nft delete table inet ladle"]
        return lines

    def apply(self, ctx: Context) -> None:
        if ctx.monitor is not None:
            _ask(ctx, self.pot, "net", action="down", net=self.net, site=site())
        else:
            down(self.net)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_record_path(self.run_dir))


@dataclass
class LinuxAliases(Step):
    """An `alias` pot (it shares the host's network namespace): its addresses on host interfaces."""

    pot: str
    aliases: list[dict[str, Any]]
    run_dir: str = ""

    def render(self) -> list[str]:
        return [f"ip addr add {a['address']}/{a['prefixlen']} dev {a['interface']}"
                + (IFA_NODAD if ":" in a["address"] else "") for a in self.aliases]

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import netlink

        if self.run_dir:
            record(self.run_dir, {"type": "alias", "aliases": self.aliases})
        done: list[dict[str, Any]] = []
        try:
            with netlink.socket() as ipr:
                for a in self.aliases:
                    netlink.add_alias(ipr, a["interface"], a["address"], a["prefixlen"])
                    done.append(a)
        except BaseException:
            LinuxAliasesRemove(self.pot, done, self.run_dir).apply(ctx)
            raise

    def inverse(self) -> list[Step]:
        return [LinuxAliasesRemove(self.pot, self.aliases, self.run_dir)]


@dataclass
class LinuxAliasesRemove(Step):
    pot: str
    aliases: list[dict[str, Any]]
    run_dir: str = ""

    def render(self) -> list[str]:
        return [f"ip addr del {a['address']}/{a['prefixlen']} dev {a['interface']}" for a in self.aliases]

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import netlink

        with netlink.socket() as ipr:
            for a in self.aliases:
                netlink.del_alias(ipr, a["interface"], a["address"], a["prefixlen"])
        if self.run_dir:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_record_path(self.run_dir))


def cleanup_steps(pot: str, run_dir: str) -> list[Step]:
    """What a crash left of a pot's network, from its record (`ladle gc`)."""
    net = recorded(run_dir)
    if not net:
        return []
    if net.get("type") == "alias":
        return [LinuxAliasesRemove(pot, list(net.get("aliases") or []), run_dir)]
    if net.get("bridge") and net.get("veth"):
        return [LinuxNetDown(pot, run_dir, net)]
    return []


@dataclass
class LinuxNetFiles(Step):
    """The pot's /etc/hosts and /etc/resolv.conf as host-side files in its run directory: the
    first is bound read-only over the pot's (so `hosts_plan` can change it while it runs), the
    second copied in like the host's."""

    run_dir: str
    hosts: str | None
    resolv: str | None

    def files(self) -> list[tuple[str, str]]:
        out = []
        if self.hosts is not None:
            out.append((os.path.join(self.run_dir, "hosts"), self.hosts))
        if self.resolv is not None:
            out.append((os.path.join(self.run_dir, "resolv.conf"), self.resolv))
        return out

    def render(self) -> list[str]:
        return [f"cat > {shlex.quote(path)} <<'EOF'\n{text.rstrip(chr(10))}\nEOF" for path, text in self.files()]

    def apply(self, ctx: Context) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        for path, text in self.files():
            write_in_place(path, text)


def write_in_place(path: str, text: str) -> None:
    """Write the file keeping its inode (a bind mount of it shows the change), never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, 0)
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


@dataclass
class LinuxHostsWrite(Step):
    """A running pot's /etc/hosts changed (a pot on its bridge came or went): the host-side file
    bound over it is rewritten in place."""

    pot: str
    path: str
    text: str

    def render(self) -> list[str]:
        return [f"# pot {self.pot}: rewritten in place (same inode, bound read-only over its /etc/hosts)",
                f"cat > {shlex.quote(self.path)} <<'EOF'\n{self.text.rstrip(chr(10))}\nEOF"]

    def apply(self, ctx: Context) -> None:
        write_in_place(self.path, self.text)
