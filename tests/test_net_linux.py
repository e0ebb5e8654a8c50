"""The Linux driver's networking with real traffic: bridges, veths, NAT, port exports, isolation,
aliases, /etc/hosts, and that a stop (or `gc` after a crash) leaves nothing.

Each test runs in a host namespace with an upstream behind it (tests/netns.py); pots are started
through the driver's plans with hand-built `RuntimeSpec.net` values (what the engine hands over).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import leaks
from tests.linux_fixtures import Pots, busybox_root, leftovers  # noqa: F401 (fixture)
from tests.netns import HOST4, HOST6, NAT4, NAT6, UP4, UP6, Net, network

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, nftables)")

# busybox's wget crashes when static (its NSS lookup of the user); nc resolves names from /etc/hosts
GET = "get() {{ printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {t} \"$1\" \"$2\" | sed '1,/^\\r$/d'; }}; "
HTTPD = "mkdir -p /www && echo hello-{name} > /www/index.html && exec httpd -f -p {port} -h /www"
ECHO_PEER = """
import http.server, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("seen " + self.client_address[0] + "\\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); super().server_bind()
s = S(("::", 9000), H); print("ready", flush=True); s.serve_forever()
"""


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
    with network() as n:
        yield n


@pytest.fixture
def npots(tmp_path: Path, busybox_root: Path, net: Net) -> Iterator[NetPots]:  # noqa: F811
    with net.entered():
        p = NetPots(tmp_path, busybox_root, net)
        try:
            yield p
        finally:
            p.cleanup()
            left = p.leaked + leftovers(tmp_path, p.pids)
            left += [f"monitor {pid} {cmd}" for pid, cmd in leaks.monitors_gone(str(tmp_path), 10).items()]
            assert not left, "left behind:\n" + "\n".join(left)


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


def wait_http(url: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fetch(url, timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def upstream_get(net: Net, url: str) -> str:
    """The body of `url` fetched from the upstream namespace (another host on the internet)."""
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end='')"
    return net.run_in(net.up, sys.executable, "-c", code, url).stdout


@pytest.fixture
def upstream_server(net: Net) -> Iterator[None]:
    """An HTTP server in the upstream namespace that answers with the address it sees."""
    proc = subprocess.Popen([*net.prefix(net.up), sys.executable, "-c", ECHO_PEER], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


def test_public_bridge_names_exports_and_nat(npots: NetPots, net: Net, upstream_server: None) -> None:
    hosts = "127.0.0.1 localhost\n10.192.0.2 web\n10.192.0.3 cli\n"
    port = {"proto": "tcp", "pot_port": 80, "host_port": 8080}
    web = npots.pot("web", HTTPD.format(name="web", port=80), bridge_net("web", 2, ports=[port], hosts=hosts))
    cli = npots.pot("cli", "sleep 100000", bridge_net("cli", 3, hosts=hosts))
    npots.start(web)
    npots.start(cli)
    # a pot fetches another by name, over its bridge
    assert npots.get(cli, "web", 80) == "hello-web\n"
    # the export, from the host itself (127.0.0.1, its own addresses), and from the upstream
    assert wait_http("http://127.0.0.1:8080/") == "hello-web\n"
    assert fetch(f"http://{HOST4}:8080/") == "hello-web\n"
    assert fetch(f"http://[{HOST6}]:8080/") == "hello-web\n"
    assert upstream_get(net, f"http://{HOST4}:8080/") == "hello-web\n"
    assert upstream_get(net, f"http://[{HOST6}]:8080/") == "hello-web\n"
    # hairpin: a pot reaches another's export through the host's address
    assert npots.get(cli, HOST4, 8080) == "hello-web\n"
    # outbound NAT: the upstream sees the host's address, over IPv4 and IPv6
    assert npots.get(cli, UP4, 9000) == f"seen ::ffff:{HOST4}\n"
    assert npots.get(cli, UP6, 9000) == f"seen {HOST6}\n"
    # /etc/hosts is ladle's, read-only for the pot
    code, out = npots.sh(cli, "cat /etc/hosts; echo x >> /etc/hosts")
    assert code != 0 and out.startswith(hosts)
    npots.stop(cli)
    npots.stop(web)
    assert net.leftovers() == []
    with pytest.raises(OSError):
        fetch("http://127.0.0.1:8080/", timeout=1)
