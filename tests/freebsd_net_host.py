"""The network of a FreeBSD host, faked at the command boundary (the one fake the project allows):
a recording runner that answers ifconfig, route and pfctl from a small model of interfaces,
bridge members, addresses and pf anchors, so plans can be applied and their effect checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from ladle.errors import CommandFailed
from tests.recording_runner import RecordingRunner


@dataclass
class Interface:
    name: str
    groups: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    peer: str = ""  # an epair's other end


@dataclass
class FreeBSDNet(RecordingRunner):
    """Interfaces by name (`ifs`), pf anchors' loaded text (`anchors`), the default route's
    interface per family (`routes`). Commands it does not model succeed silently."""

    ifs: dict[str, Interface] = field(default_factory=dict)
    anchors: dict[str, str] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=lambda: {"inet": "vtnet0", "inet6": "vtnet0"})
    epairs: int = 0

    def __post_init__(self) -> None:
        self.ifs.setdefault("vtnet0", Interface("vtnet0", addresses=["inet 192.0.2.10 netmask 0xffffff00"]))
        self.ifs.setdefault("lo0", Interface("lo0", addresses=["inet 127.0.0.1 netmask 0xff000000"]))

    def run(self, argv: list[str], *, input: bytes | None = None, check: bool = True) -> str:
        answer = self._lookup(argv)
        if answer:  # an answer given by the test wins
            return super().run(argv, input=input, check=check)
        super().run(argv, input=input, check=False)
        try:
            return self.model(argv, input)
        except CommandFailed:
            if check:
                raise
            return ""

    def fail(self, argv: list[str], why: str) -> CommandFailed:
        return CommandFailed(argv, 1, f"{argv[0]}: {why}")

    def model(self, argv: list[str], input: bytes | None) -> str:
        cmd, args = argv[0], argv[1:]
        if cmd == "ifconfig":
            return self.ifconfig(argv, args)
        if cmd == "route" and args[:2] == ["-n", "get"]:
            af = args[2].lstrip("-")
            if af not in self.routes:
                raise self.fail(argv, "route has not been found")
            return f"   route to: default\ndestination: default\n  interface: {self.routes[af]}\n"
        if cmd == "pfctl" and "-a" in args:
            anchor = args[args.index("-a") + 1]
            if "-f" in args:
                self.anchors[anchor] = (input or b"").decode()
            elif "-F" in args:
                self.anchors.pop(anchor, None)
        return ""

    def ifconfig(self, argv: list[str], args: list[str]) -> str:
        if args[:1] == ["-g"]:
            return "".join(f"{i.name}\n" for i in self.ifs.values() if args[1] in i.groups)
        if args[:1] == ["-j"]:
            return ""
        name, rest = args[0], args[1:]
        if rest[:1] == ["create"]:
            if name.startswith("epair"):
                unit = name[5:] or str(self.epairs)
                self.epairs += 1
                a, b = f"epair{unit}a", f"epair{unit}b"
                if a in self.ifs:
                    raise self.fail(argv, "SIOCIFCREATE2 (create): File exists")
                self.ifs[a], self.ifs[b] = Interface(a, ["epair"], peer=b), Interface(b, ["epair"], peer=a)
                if "name" not in rest:
                    return a + "\n"
                name, rest = a, rest[1:]
                it = self.ifs[a]
            else:
                new = rest[rest.index("name") + 1] if "name" in rest else f"{name}0"
                groups = [name, *([rest[rest.index("group") + 1]] if "group" in rest else [])]
                self.ifs[new] = Interface(new, groups)
                return ""
        elif name not in self.ifs:
            raise self.fail(argv, f"interface {name} does not exist")
        else:
            it = self.ifs[name]
        if not rest or rest in (["inet"], ["inet6"]):
            return self.show(it)
        if rest == ["destroy"]:
            del self.ifs[name]
            self.ifs.pop(it.peer, None)  # an epair goes whole
            for i in self.ifs.values():
                i.members = [m for m in i.members if m in self.ifs]
            return ""
        if "-alias" in rest:
            wanted = rest[1]
            kept = [a for a in it.addresses if a.split()[1] != wanted]
            if len(kept) == len(it.addresses):
                raise self.fail(argv, "ioctl (SIOCDIFADDR): Can't assign requested address")
            it.addresses = kept
            return ""
        if rest[:1] in (["inet"], ["inet6"]) and len(rest) == 2 and "/" in rest[1]:
            addr, plen = rest[1].split("/")
            shown = f"inet {addr} netmask /{plen}" if rest[0] == "inet" else f"inet6 {addr} prefixlen {plen}"
            it.addresses.append(shown)
            return ""
        if "name" in rest:
            new = rest[rest.index("name") + 1]
            del self.ifs[name]
            it.name = new
            self.ifs[new] = it
            for i in self.ifs.values():
                i.members = [new if m == name else m for m in i.members]
                i.peer = new if i.peer == name else i.peer
        if "group" in rest:
            it.groups.append(rest[rest.index("group") + 1])
        if "addm" in rest:
            it.members.append(rest[rest.index("addm") + 1])
        return ""

    def show(self, it: Interface) -> str:
        lines = [f"{it.name}: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500",
                 *(f"\t{a}" for a in it.addresses), *(f"\tmember: {m} flags=143<LEARNING>" for m in it.members)]
        if it.groups:
            lines.append(f"\tgroups: {' '.join(it.groups)}")
        return "\n".join(lines) + "\n"

    def ladle_interfaces(self) -> list[str]:
        """What a leak check would look for: ladle's bridges and pot ends, and stray epairs."""
        return sorted(n for n in self.ifs if n.startswith(("ldbr", "ldv", "ldp", "epair")))
