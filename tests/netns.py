"""A network namespace that plays the host and one behind it that plays the internet.

The root namespace of this machine is shared and keeps ip_forward=0: ladle's network tests never
touch it. `Net` makes `ldt<pid>h<N>` (the host: ladle runs in it, it gets the default route) and
`ldt<pid>u<N>` (the upstream: an address of its own and no route back to any pot, so only the
host's masquerade lets a pot reach it), joined by a veth pair. Driver-level tests move the test
process itself into the host namespace (`entered`), so the monitor it starts lives there; CLI
tests run `nsenter --net=/run/netns/NAME ladle ...` (not `ip netns exec`, which remounts /sys).
At the end, nothing of ladle may be left in the host namespace (no ldbr*/ldv* interface, no
`inet ladle` table) and both namespaces are deleted.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import leaks
from tests.linux_fixtures import Pots, leftovers

HOST4, UP4 = "198.51.100.2", "198.51.100.1"  # TEST-NET-2 between host and upstream
HOST6, UP6 = "2001:db8:51::2", "2001:db8:51::1"
NAT4, NAT6 = "10.192.0.0/10", "fd1a:d1e0:0::/48"
_count = itertools.count()


def sh(*argv: str, check: bool = True, input: str | None = None, timeout: float = 30,
       ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


class Net:
    """The host and upstream namespaces of one test."""

    def __init__(self) -> None:
        n = next(_count)
        self.host = f"ldt{os.getpid()}h{n}"
        self.up = f"ldt{os.getpid()}u{n}"
        self._own = -1

    def make(self) -> None:
        sh("ip", "netns", "add", self.host)
        sh("ip", "netns", "add", self.up)
        a, b = f"ltu{os.getpid() % 100000}", "ltuh"  # short names; the pair is moved at once
        sh("ip", "link", "add", a, "netns", self.host, "type", "veth", "peer", "name", b, "netns", self.up)
        for ns, dev, v4, v6 in ((self.host, a, HOST4, HOST6), (self.up, b, UP4, UP6)):
            self.run_in(ns, "ip", "link", "set", "lo", "up")
            self.run_in(ns, "ip", "link", "set", dev, "name", "up0")
            self.run_in(ns, "ip", "addr", "add", f"{v4}/24", "dev", "up0")
            self.run_in(ns, "ip", "addr", "add", f"{v6}/64", "dev", "up0", "nodad")
            self.run_in(ns, "ip", "link", "set", "up0", "up")
        self.run_in(self.host, "ip", "route", "add", "default", "via", UP4)
        self.run_in(self.host, "ip", "-6", "route", "add", "default", "via", UP6)

    def run_in(self, ns: str, *argv: str, check: bool = True, timeout: float = 30,
               ) -> subprocess.CompletedProcess[str]:
        return sh("nsenter", f"--net=/run/netns/{ns}", *argv, check=check, timeout=timeout)

    def prefix(self, ns: str | None = None) -> list[str]:
        """What runs a command in the host namespace (or `ns`)."""
        return ["nsenter", f"--net=/run/netns/{ns or self.host}"]

    def leftovers(self) -> list[str]:
        """ladle's interfaces and table still in the host namespace."""
        links = self.run_in(self.host, "ip", "-o", "link").stdout
        found = [f"interface {line.split(':')[1].strip().split('@')[0]}" for line in links.splitlines()
                 if line.split(":")[1].strip().startswith(("ldbr", "ldv"))]
        if self.run_in(self.host, "nft", "list", "table", "inet", "ladle", check=False).returncode == 0:
            found.append("nftables table inet ladle")
        return found

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """This test process in the host namespace (its children, the monitor too, start there)."""
        from ladle.hosts.linux import syscalls as sc

        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fd = os.open(f"/run/netns/{self.host}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, sc.CLONE_NEWNET)
            try:
                yield
            finally:
                sc.setns(own, sc.CLONE_NEWNET)
        finally:
            os.close(fd)
            os.close(own)

    def remove(self) -> None:
        for ns in (self.host, self.up):
            sh("ip", "netns", "del", ns, check=False)


@contextlib.contextmanager
def network() -> Iterator[Net]:
    """A fresh host and upstream; afterwards nothing of ladle may be left in the host."""
    net = Net()
    try:
        net.make()
        yield net
        left = net.leftovers()
        assert not left, "left in the host namespace:\n" + "\n".join(left)
    finally:
        net.remove()


# busybox's wget crashes when static (its NSS lookup of the user); nc resolves names from /etc/hosts
GET = "get() {{ printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {t} \"$1\" \"$2\" | sed '1,/^\\r$/d'; }}; "
HTTPD = "mkdir -p /www && echo hello-{name} > /www/index.html && exec httpd -f -p {port} -h /www"


def bridge_net(pot: str, n: int, *, bridge: str = "ldbr0", v4: str = "10.192.0", v6: str = "fd1a:d1e0:0:0",
               prefix4: int = 10, ports: list[dict[str, Any]] | None = None, hosts: str | None = None,
               network: str = "public") -> dict[str, Any]:
    """A NetSpec as the engine fills it for a bridge pot with the n-th address of its network."""
    return {"type": "public-bridge" if network == "public" else "private-bridge", "network": network,
            "bridge": bridge, "veth": f"ldv{abs(hash((pot, bridge))) % 16**8:08x}",
            "ipv4": {"address": f"{v4}.{n}", "prefixlen": prefix4, "gateway": f"{v4}.1"},
            "ipv6": {"address": f"{v6}::{n:x}", "prefixlen": 64, "gateway": f"{v6}::1"},
            "nat": [NAT4, NAT6], "aliases": [], "ports": ports or [], "hosts": hosts, "resolv": None}


class NetPots(Pots):
    """Pots started in the host namespace of `net`."""

    def __init__(self, base: Path, tree: Path, net: Net) -> None:
        super().__init__(base, tree)
        self.net = net
        self.calls = itertools.count()

    def pot(self, name: str, cmd: str, net: dict[str, Any]) -> Any:
        spec = self.spec(cmd, name=name, network=net.get("type", "none"))
        spec.net = net  # type: ignore[typeddict-item]
        return spec

    def sh(self, spec: Any, script: str, timeout: float = 20) -> tuple[int | None, str]:
        """Run a shell script in the pot; its exit code and what it wrote (a new file each time: the
        overlay's upper directory must not be changed under it)."""
        name = f"out{next(self.calls)}"
        out = self.upper(spec.name) / "tmp" / name
        code = self.exec(spec, ["/bin/sh", "-c", f"mkdir -p /tmp; ({script}) >/tmp/{name} 2>&1"])
        return code, out.read_text() if out.exists() else ""

    def get(self, spec: Any, host: str, port: int, timeout: int = 3) -> str:
        """The body of http://HOST:PORT/ fetched from inside the pot (nc), "" if it failed."""
        return self.sh(spec, GET.format(t=timeout) + f"get {host} {port}")[1]


@pytest.fixture
def net() -> Iterator[Net]:
    """A host namespace with an upstream behind it, for one test."""
    with network() as n:
        yield n


@pytest.fixture
def npots(tmp_path: Path, busybox_root: Path, net: Net) -> Iterator[NetPots]:
    with net.entered():
        p = NetPots(tmp_path, busybox_root, net)
        try:
            yield p
        finally:
            p.cleanup()
            left = p.leaked + leftovers(tmp_path, p.pids)
            left += [f"monitor {pid} {cmd}" for pid, cmd in leaks.monitors_gone(str(tmp_path), 10).items()]
            assert not left, "left behind:\n" + "\n".join(left)
