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
