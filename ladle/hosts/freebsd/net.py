"""FreeBSD networking of a pot: VNET on a bridge (epair, bridge, pf), aliases, /etc/hosts.

A bridge pot (public-bridge, private-bridge) gets one epair: its a-side, named `net["veth"]`
(`ldv<hex>`) by the ifconfig that makes the pair, is a member of the network's bridge
`net["bridge"]` (`ldbr<N>`, made by the first pot that needs it, with the gateway addresses,
and destroyed by the last one); its b-side, renamed to `pot_end(veth)` (`ldp<hex>`, a name no
host interface has, so it can come back to the host when the jail goes without clashing with
anything), is handed to the jail with `vnet.interface`. The pot's addresses and default routes are set
from the host with `ifconfig -j` and `route -j` (FreeBSD 13.3 and 14.0 have them), so none of
the pot's own binaries run for it. IPv6 addresses go on with `no_dad`, usable at once.

pf: the host-wide NAT of the configured networks is anchor `ladle/_nat` (a pot name cannot start
with '_', so no pot's anchor is ever it), loaded by every bridge pot's start and flushed when
the last ladle bridge goes; each bridge pot's exports and filter rules are anchor `ladle/<pot>`,
loaded at start and flushed at stop. The user's pf.conf evaluates them with
`nat-anchor "ladle/*"`, `rdr-anchor "ladle/*"` and `anchor "ladle/*"`. The external interface
is the one of the default route (`route -n get default`), read when the plan is made.

Bridges, epairs and the NAT anchor change under one lock (`freebsd-net`), so a bridge is never
destroyed by one pot's stop while another pot's start attaches to it.
"""

from __future__ import annotations

import os
import shlex
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from ipaddress import ip_interface, ip_network

from ladle.errors import CommandFailed, HostError, UsageError
from ladle.hosts.base import NetAddress, NetAlias, NetPort, NetSpec, RuntimeSpec
from ladle.paths import resolve_in_root
from ladle.plan.steps import Command, Context, Step

LOCK = "freebsd-net"
GROUP = "ladle"
NAT_ANCHOR = "ladle/_nat"
HAIRPIN_TAG = "LADLE_HAIRPIN"
UNKNOWN_EXT_IF = "DEFAULT-ROUTE-IF"  # a dry run on another host: no route to read


def pot_end(veth: str) -> str:
    """The jail's end of the epair: `ldv<hex>` -> `ldp<hex>` (as long, so it fits IFNAMSIZ)."""
    if not veth.startswith("ldv") or len(veth) > 15:
        raise UsageError(f"invalid host-side interface name {veth!r} (ldv<hex>, at most 15 characters)")
    return "ldp" + veth[3:]


EPAIR_UNITS = 32768  # if_clone(9)'s IF_MAXUNIT + 1
EPAIR_TRIES = 8


def epair_units(veth: str) -> list[int]:
    """The epair units a pot's pair may take, from its interface name's hex digits: a few, in
    case another pair (ladle's or another tool's) has one."""
    try:
        first = int(veth[3:], 16) % EPAIR_UNITS
    except ValueError:
        first = 0
    return [(first + i) % EPAIR_UNITS for i in range(EPAIR_TRIES)]


def pot_anchor(pot: str) -> str:
    return f"ladle/{pot}"


def _locked(root: str) -> AbstractContextManager[None]:
    from ladle.state import locks
    return locks.hold(root, LOCK)


def _exists(ctx: Context, interface: str) -> bool:
    try:
        ctx.runner.run(["ifconfig", interface])
    except CommandFailed:
        return False
    return True


def cidr(addr: NetAddress, of: str = "address") -> str:
    return f"{addr[of]}/{addr['prefixlen']}"  # type: ignore[literal-required]


def subnet(addr: NetAddress) -> str:
    return str(ip_interface(cidr(addr)).network)


def addresses(net: NetSpec) -> list[tuple[str, NetAddress]]:
    """(address family keyword, address) of the pot's leases, IPv4 first."""
    v4, v6 = net.get("ipv4"), net.get("ipv6")
    return [*([("inet", v4)] if v4 else []), *([("inet6", v6)] if v6 else [])]


# Host side: forwarding, bridge and epair ----------------------------------------------------------

@dataclass
class NetForwarding(Command):
    """`sysctl net.inet.ip.forwarding=1` (and IPv6's): the host routes between its bridges and
    the outside. Left on at stop: other things on the host may rely on it (said in the README)."""

    families: list[str]

    def argvs(self) -> list[list[str]]:
        names = {"inet": "net.inet.ip.forwarding=1", "inet6": "net.inet6.ip6.forwarding=1"}
        return [["sysctl", names[af]] for af in self.families]


def bridge_create_argv(bridge: str, network: str) -> list[str]:
    """`ifconfig bridge create name BRIDGE ...`: created and renamed in one invocation, so no
    `bridgeN` is ever left behind (ifconfig prints no name then)."""
    return ["ifconfig", "bridge", "create", "name", bridge, "descr", f"ladle network {network}", "group", GROUP]


def gateway_argvs(bridge: str, gateways: list[tuple[str, str]]) -> list[list[str]]:
    """The bridge's gateway addresses, IPv6 without duplicate address detection (the flag set
    before any address, which brings the interface up), then up."""
    argvs = [["ifconfig", bridge, "inet6", "no_dad", "-ifdisabled"]] if any(af == "inet6" for af, _ in gateways) else []
    argvs += [["ifconfig", bridge, af, gw] for af, gw in gateways]
    return [*argvs, ["ifconfig", bridge, "up"]]


@dataclass
class VnetUp(Step):
    """The pot's epair on its bridge, under the network lock: the bridge made if it is missing
    (and given the gateway addresses it lacks), the epair made and both ends renamed, the a-side
    added to the bridge, and the NAT anchor (re)loaded. Undone by `VnetDown`."""

    root: str
    pot: str
    network: str
    bridge: str
    veth: str
    gateways: list[list[str]]  # [address family, GW/PREFIX]
    nat: str = ""  # the NAT anchor's rules ('' for none)

    def _epair_argv(self, unit: int) -> list[str]:
        """`ifconfig epairN create name VETH ...`: the pair made with a unit of our choosing
        (epair(4): epairNa and epairNb) and its a-side renamed in the same invocation, so a
        crash never leaves a pair that nothing can name (VnetDown destroys VETH, and both ends
        go); the b-side is epairNb until renamed."""
        return ["ifconfig", f"epair{unit}", "create", "name", self.veth, "descr", f"ladle pot {self.pot}", "group",
                GROUP, "up"]

    def _rest(self) -> list[list[str]]:
        return [["ifconfig", self.bridge, "addm", self.veth]]

    def render(self) -> list[str]:
        gws = [(af, gw) for af, gw in self.gateways]
        units = epair_units(self.veth)
        lines = [f"# under the lock {LOCK}; unless {self.bridge} exists:",
                 shlex.join(bridge_create_argv(self.bridge, self.network)),
                 f"# unless it has them all (ifconfig {self.bridge}), its gateway addresses:",
                 *(shlex.join(a) for a in gateway_argvs(self.bridge, gws)),
                 f"# {self.veth} destroyed if a crash left it; the first free unit of epair{units[0]} to "
                 f"epair{units[-1]}:",
                 shlex.join(self._epair_argv(units[0])),
                 f"ifconfig epair{units[0]}b name {pot_end(self.veth)}",
                 *(shlex.join(a) for a in self._rest())]
        if self.nat:
            lines += [f"pfctl -a {NAT_ANCHOR} -f - <<'EOF'", *self.nat.rstrip("\n").split("\n"), "EOF"]
        return lines

    def apply(self, ctx: Context) -> None:
        with _locked(self.root):
            try:
                self._up(ctx)
            except BaseException:
                _down(ctx, self.bridge, self.veth)  # a failing step is not undone by the executor
                raise

    def _up(self, ctx: Context) -> None:
        """The bridge may exist without an address this pot needs: an IPv4 pot made it, and this
        one is dual-stack."""
        try:
            shown = ctx.runner.run(["ifconfig", self.bridge])
        except CommandFailed:
            ctx.runner.run(bridge_create_argv(self.bridge, self.network))
            shown = ""
        missing = [(af, gw) for af, gw in self.gateways if not _has_address(shown, gw.split("/")[0])]
        if missing:
            for argv in gateway_argvs(self.bridge, missing):
                ctx.runner.run(argv)
        if _exists(ctx, self.veth):  # left by a crash: ours by its name, and in the way of the new one
            ctx.runner.run(["ifconfig", self.veth, "destroy"])
        unit = self._epair(ctx)
        ctx.runner.run(["ifconfig", f"epair{unit}b", "name", pot_end(self.veth)])
        for argv in self._rest():
            ctx.runner.run(argv)
        if self.nat:
            pf_load(ctx, NAT_ANCHOR, self.nat)

    def _epair(self, ctx: Context) -> int:
        """Make the pair on the first free unit; return it. A unit whose epairNa is there, or
        that ifconfig finds taken (a pair renamed since), is another pair's. A pair made but not
        named (ifconfig failed after the create) is destroyed: nothing else would know it."""
        for unit in epair_units(self.veth):
            a = f"epair{unit}a"
            if _exists(ctx, a):
                continue
            try:
                ctx.runner.run(self._epair_argv(unit))
                return unit
            except CommandFailed as e:
                if _exists(ctx, a):
                    ctx.runner.run(["ifconfig", a, "destroy"], check=False)
                    raise
                if "exists" not in e.stderr:
                    raise
        units = epair_units(self.veth)
        raise HostError(f"epair{units[0]} to epair{units[-1]} are all taken")

    def inverse(self) -> list[Step]:
        return [VnetDown(self.root, self.bridge, self.veth)]


@dataclass
class VnetDown(Step):
    """Under the network lock: `ifconfig VETH destroy` (both ends go, wherever the other one is;
    one already gone is fine), then the bridge if no member is left, then the NAT anchor if no
    ladle bridge is left."""

    root: str
    bridge: str
    veth: str

    def render(self) -> list[str]:
        return [f"# under the lock {LOCK}:", f"ifconfig {self.veth} destroy",
                f"# if {self.bridge} has no member left (ifconfig {self.bridge}):", f"ifconfig {self.bridge} destroy",
                f"# if no ladle bridge is left (ifconfig -g {GROUP}):", f"pfctl -a {NAT_ANCHOR} -F nat"]

    def apply(self, ctx: Context) -> None:
        with _locked(self.root):
            _down(ctx, self.bridge, self.veth)


def _down(ctx: Context, bridge: str, veth: str) -> None:
    """VnetDown's work, with the network lock held."""
    try:
        ctx.runner.run(["ifconfig", veth, "destroy"])
    except CommandFailed:
        if _exists(ctx, veth):
            raise
    try:
        shown = ctx.runner.run(["ifconfig", bridge])
    except CommandFailed:
        shown = None  # gone already
    if shown is not None and not any(line.split()[:1] == ["member:"] for line in shown.splitlines()):
        ctx.runner.run(["ifconfig", bridge, "destroy"])
    group = ctx.runner.run(["ifconfig", "-g", GROUP], check=False).split()
    if not any(name.startswith("ldbr") for name in group):
        PfAnchorFlush(NAT_ANCHOR, ["nat"]).apply(ctx)


# Inside the jail --------------------------------------------------------------------------------

def jail_address_argvs(jail: str, interface: str, addrs: list[tuple[str, NetAddress]]) -> list[list[str]]:
    """The pot's addresses and default routes, set from the host in the jail's stack."""
    argvs: list[list[str]] = []
    if any(af == "inet6" for af, _ in addrs):
        argvs.append(["ifconfig", "-j", jail, interface, "inet6", "no_dad", "-ifdisabled"])
    argvs += [["ifconfig", "-j", jail, interface, af, cidr(a)] for af, a in addrs]
    argvs.append(["ifconfig", "-j", jail, interface, "up"])
    argvs += [["route", "-j", jail, "add", f"-{af}", "default", a["gateway"]] for af, a in addrs]
    return argvs


@dataclass
class JailNetConfig(Command):
    """The jail's end of the epair configured inside the jail: no undo, it goes with the jail."""

    jail: str
    interface: str
    addrs: list[list]  # type: ignore[type-arg]  # [address family, NetAddress]

    def argvs(self) -> list[list[str]]:
        return jail_address_argvs(self.jail, self.interface, [(af, a) for af, a in self.addrs])


@dataclass
class JailWriteFile(Step):
    """Write `content` at in-pot path `target` of the pot whose root is `root` on the host, from
    the host, with no binary of the pot involved (a pot's /bin/sh could hang the command that
    refreshes every pot's /etc/hosts). The directory is resolved inside the pot's root, then
    opened component by component with O_NOFOLLOW, so a link the pot swaps in meanwhile is
    refused, never followed out; the file is new (O_EXCL: no FIFO or device the pot planted is
    written through) and renamed over the name (a link there is replaced). A pot without the
    directory is skipped, as pot does."""

    root: str
    target: str
    content: str

    def render(self) -> list[str]:
        path = self.root.rstrip("/") + self.target
        return [f"# {self.target}, written from the host without following a link (a new file renamed over it):",
                f"cat > {shlex.quote(path)} <<'EOF'", *self.content.rstrip("\n").split("\n"), "EOF"]

    def apply(self, ctx: Context) -> None:
        parent, name = os.path.split(self.target)
        where = os.path.relpath(resolve_in_root(self.root, parent), os.path.abspath(self.root))
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in [] if where == "." else where.split("/"):
                try:
                    nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    return
                except OSError as e:
                    raise HostError(f"{self.target} not written: {parent} changed under it ({e.strerror})") from None
                os.close(fd)
                fd = nfd
            tmp = f".{name}.ladle-{os.urandom(4).hex()}"
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
            try:
                with os.fdopen(out, "w") as f:
                    f.write(self.content)
                    os.fchmod(f.fileno(), 0o644)
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                os.unlink(tmp, dir_fd=fd)
                raise
        finally:
            os.close(fd)


# pf --------------------------------------------------------------------------------------------

def nat_rules(nat: list[str], ext: dict[str, str]) -> str:
    """The NAT anchor: sources in the configured networks leaving for anything outside them,
    translated to the external interface's address (`nat pass`: past the user's filter rules)."""
    lines = []
    for prefix in nat:
        net = ip_network(prefix, strict=False)
        af = "inet" if net.version == 4 else "inet6"
        if ext.get(af):
            lines.append(f"nat pass on {ext[af]} {af} from {net} to ! {net} -> ({ext[af]}:0)")
    return "".join(line + "\n" for line in lines)


@dataclass
class PotRules:
    """What a bridge pot's anchor holds, as pf.conf(5) text (`text()`)."""

    bridge: str
    veth: str
    private: bool
    addrs: list[tuple[str, NetAddress]]
    ports: list[NetPort]
    nat: list[str]
    ext: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        out: list[str] = []
        for af, a in self.addrs:
            out += self._exports(af, a)
        out += self._filter()
        return "".join(line + "\n" for line in out)

    def _exports(self, af: str, a: NetAddress) -> list[str]:
        """Each export three ways: from outside to the external interface's address; from the
        host itself to the loopback address; from pots on any ladle bridge (interface group
        `ladle`) to the host's address (hairpin). The last two are tagged, and their sources
        translated to the gateway on the way to the pot, so that the pot's answer comes back
        through the host."""
        lines = []
        loopback = "127.0.0.1" if af == "inet" else "::1"
        ext = self.ext.get(af)
        for p in self.ports:
            what = f"{af} proto {p['proto']}"
            to = f"-> {a['address']} port {p['pot_port']}"
            if ext:
                lines.append(f"rdr pass on {ext} {what} from any to ({ext}) port {p['host_port']} {to}")
                lines.append(f"rdr pass on {GROUP} {what} from any to ({ext}) port {p['host_port']} "
                             f"tag {HAIRPIN_TAG} {to}")
            lines.append(f"rdr pass on lo0 {what} from any to {loopback} port {p['host_port']} tag {HAIRPIN_TAG} {to}")
        if self.ports:
            lines.append(f"nat on {self.bridge} {af} from any to {a['address']} tagged {HAIRPIN_TAG} -> "
                         f"{a['gateway']}")
        return lines

    def _filter(self) -> list[str]:
        """Pass rules, so that a restrictive pf.conf still lets the pot's traffic through (what
        it sends through the host, and what the host forwards to it: `rdr pass` passes a
        redirected packet on its way in only), and
        block rules that hold whatever pf.conf says: on its epair the pot sends only from its own
        addresses (and IPv6 link-local ones), never another pot's; a private bridge's pot reaches
        the pots on its bridge and the outside, nothing else in the configured networks."""
        lines = []
        for af, a in self.addrs:
            sources = a["address"] if af == "inet" else f"{{ {a['address']}, fe80::/10 }}"
            lines.append(f"pass in quick on {self.veth} {af} from {sources} to any")
        lines += [f"block drop in quick on {self.veth} all", f"pass out quick on {self.veth} all"]
        for af, a in self.addrs:
            own = subnet(a)
            if self.private:
                version = ip_interface(cidr(a)).version
                lines.append(f"pass quick on {self.bridge} {af} from {own} to {own}")
                for n in self.nat:
                    other = ip_network(n, strict=False)
                    if other.version == version:
                        lines.append(f"block drop in quick on {self.bridge} {af} from {a['address']} to {other}")
                        lines.append(f"block drop out quick on {self.bridge} {af} from {other} to {a['address']}")
            lines.append(f"pass in quick on {self.bridge} {af} from {a['address']} to any")
            lines.append(f"pass out quick on {self.bridge} {af} from any to {a['address']}")
        return lines


@dataclass
class PfAnchorLoad(Step):
    """`pfctl -a ANCHOR -f -`: load the pot's rules (replacing any); undone by flushing them."""

    anchor: str
    rules: str

    def argv(self) -> list[str]:
        return ["pfctl", "-a", self.anchor, "-f", "-"]

    def render(self) -> list[str]:
        return [shlex.join(self.argv()) + " <<'EOF'", *self.rules.rstrip("\n").split("\n"), "EOF"]

    def apply(self, ctx: Context) -> None:
        pf_load(ctx, self.anchor, self.rules)

    def inverse(self) -> list[Step]:
        return [PfAnchorFlush(self.anchor)]


def pf_load(ctx: Context, anchor: str, rules: str) -> None:
    """`pfctl -a ANCHOR -f -` with `rules` on its stdin; a host without pf is told what to do."""
    try:
        ctx.runner.run(["pfctl", "-a", anchor, "-f", "-"], input=rules.encode())
    except CommandFailed as e:
        if "/dev/pf" in e.stderr:
            raise HostError("bridge networks need pf for their NAT and port exports: load it (kldload pf, and "
                            "pf_enable=YES in /etc/rc.conf) with ladle's anchors in /etc/pf.conf") from None
        raise


@dataclass
class PfAnchorFlush(Command):
    """`pfctl -a ANCHOR -F nat` and `-F rules`: the anchor's translation and filter rules, all it
    holds, so no rule outlives its pot. Not `-F all`, which means the state table and counters
    too, host-wide things. An anchor that was never loaded flushes just as well, and without pf
    (no /dev/pf) there is nothing to flush."""

    anchor: str
    what: list[str] = field(default_factory=lambda: ["nat", "rules"])

    def argvs(self) -> list[list[str]]:
        return [["pfctl", "-a", self.anchor, "-F", w] for w in self.what]

    def apply(self, ctx: Context) -> None:
        for argv in self.argvs():
            try:
                ctx.runner.run(argv)
            except CommandFailed as e:
                if "/dev/pf" not in e.stderr:  # without pf loaded there is no rule to flush
                    raise


# Aliases ---------------------------------------------------------------------------------------

def alias_af(a: NetAlias) -> str:
    return "inet6" if ":" in a["address"] else "inet"


@dataclass
class AliasGuard(Step):
    """Before `jail -c` adds the aliases (jail(8) does, from `ip4.addr`/`ip6.addr`): refuse an
    address the interface has already (the host's own, or another jail's), which the undo would
    otherwise remove; undone by removing the aliases."""

    aliases: list[NetAlias]

    def render(self) -> list[str]:
        return [f"# jail -c adds {a['address']}/{a['prefixlen']} to {a['interface']} (it must not be there yet)"
                for a in self.aliases]

    def apply(self, ctx: Context) -> None:
        for a in self.aliases:
            shown = ctx.runner.run(["ifconfig", a["interface"], alias_af(a)])
            if _has_address(shown, a["address"]):
                raise UsageError(f"{a['interface']} has address {a['address']} already: choose another for the pot")

    def inverse(self) -> list[Step]:
        return [AliasRemove(a["interface"], a["address"]) for a in self.aliases]


def _has_address(shown: str, address: str) -> bool:
    for line in shown.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("inet", "inet6") and words[1].split("%")[0] == address:
            return True
    return False


@dataclass
class AliasRemove(Command):
    """`ifconfig IF inet|inet6 ADDR -alias`; an address already gone is fine (jail -r removed it)."""

    interface: str
    address: str

    def argvs(self) -> list[list[str]]:
        af = "inet6" if ":" in self.address else "inet"
        return [["ifconfig", self.interface, af, self.address, "-alias"]]

    def apply(self, ctx: Context) -> None:
        [argv] = self.argvs()
        try:
            ctx.runner.run(argv)
        except CommandFailed:
            if _has_address(ctx.runner.run(["ifconfig", self.interface, argv[2]], check=False), self.address):
                raise


# Plans -----------------------------------------------------------------------------------------

BRIDGES = ("public-bridge", "private-bridge")


def default_route_interface(output: str) -> str | None:
    """The `interface:` line of `route -n get default` (route(8) prints one `key: value` a line)."""
    for line in output.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "interface" and value.strip():
            return value.strip()
    return None


def start_steps(spec: RuntimeSpec, root: str, ext: dict[str, str], path: str) -> tuple[list[Step], list[Step]]:
    """The network steps of a start: those before `jail -c` (host side) and those after it (the
    jail's side, and its /etc/hosts and /etc/resolv.conf when the engine gave their text; `path`
    is the jail's root on the host)."""
    net, name = spec.net, spec.name
    before: list[Step] = []
    after: list[Step] = []
    if spec.network in BRIDGES:
        addrs = addresses(net)
        if not addrs or not net.get("bridge") or not net.get("veth"):
            raise UsageError(f"pot {name}: network {spec.network} without an address, bridge or interface")
        veth = net["veth"]
        before.append(NetForwarding([af for af, _ in addrs]))
        before.append(VnetUp(root, name, net["network"], net["bridge"], veth,
                             [[af, cidr(a, "gateway")] for af, a in addrs], nat_rules(net.get("nat", []), ext)))
        rules = PotRules(net["bridge"], veth, spec.network == "private-bridge", addrs, net.get("ports", []),
                         net.get("nat", []), ext)
        before.append(PfAnchorLoad(pot_anchor(name), rules.text()))
        after.append(JailNetConfig(name, pot_end(veth), [[af, a] for af, a in addrs]))
    elif spec.network == "alias":
        before.append(AliasGuard(list(net.get("aliases", []))))
    if not spec.read_only_at("/etc"):
        for target, key in (("/etc/hosts", "hosts"), ("/etc/resolv.conf", "resolv")):
            text = net.get(key)
            if text is not None:
                after.append(JailWriteFile(path, target, str(text)))
    return before, after


def stop_steps(spec: RuntimeSpec, root: str) -> list[Step]:
    """Undo what the start's network steps did on the host, each tolerant of it being gone."""
    net = spec.net
    if spec.network in BRIDGES and net.get("veth") and net.get("bridge"):
        return [PfAnchorFlush(pot_anchor(spec.name)), VnetDown(root, net["bridge"], net["veth"])]
    if spec.network == "alias":
        return [AliasRemove(a["interface"], a["address"]) for a in net.get("aliases", [])]
    return []
