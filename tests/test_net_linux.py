"""The Linux driver's networking with real traffic: bridges, veths, NAT, port exports, isolation,
aliases, /etc/hosts, and that a stop (or `gc` after a crash) leaves nothing.

Each test runs in a host namespace with an upstream behind it (tests/netns.py); pots are started
through the driver's plans with hand-built `RuntimeSpec.net` values (what the engine hands over).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.netns import HOST4, HOST6, HTTPD, UP4, UP6, Net, NetPots, bridge_net

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, nftables)")

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


def test_private_bridges_are_isolated_but_exports_cross(npots: NetPots, net: Net) -> None:
    priv = {"bridge": "ldbr7", "v4": "10.200.7", "prefix4": 24, "v6": "fd1a:d1e0:0:7", "network": "priv"}
    other = {"bridge": "ldbr8", "v4": "10.200.8", "prefix4": 24, "v6": "fd1a:d1e0:0:8", "network": "other"}
    port = {"proto": "tcp", "pot_port": 80, "host_port": 8088}
    a = npots.pot("a", HTTPD.format(name="a", port=80), bridge_net("a", 2, ports=[port], **priv))  # type: ignore[arg-type]
    b = npots.pot("b", "sleep 100000", bridge_net("b", 3, **priv))  # type: ignore[arg-type]
    c = npots.pot("c", HTTPD.format(name="c", port=80), bridge_net("c", 2, **other))  # type: ignore[arg-type]
    p = npots.pot("p", "sleep 100000", bridge_net("p", 5))
    for spec in (a, b, c, p):
        npots.start(spec)
    assert wait_http("http://127.0.0.1:8088/") == "hello-a\n"
    assert npots.get(b, "10.200.7.2", 80) == "hello-a\n"  # on the same private bridge
    assert npots.get(b, "fd1a:d1e0:0:7::2", 80) == "hello-a\n"
    assert "hello" not in npots.get(b, "10.200.8.2", 80, timeout=2)  # another private bridge
    assert "hello" not in npots.get(b, "fd1a:d1e0:0:8::2", 80, timeout=2)
    assert "hello" not in npots.get(p, "10.200.7.2", 80, timeout=2)  # from the public bridge
    assert "hello" not in npots.get(c, "10.200.7.2", 80, timeout=2)
    assert npots.get(c, HOST4, 8088) == "hello-a\n"  # except through an export
    for spec in (a, b, c, p):
        npots.stop(spec)
    assert net.leftovers() == []


def test_alias_adds_the_address_while_the_pot_runs(npots: NetPots, net: Net) -> None:
    alias = {"type": "alias", "aliases": [{"interface": "up0", "address": "198.51.100.50", "prefixlen": 32},
                                          {"interface": "up0", "address": "2001:db8:51::50", "prefixlen": 128}],
             "hosts": None, "resolv": None}
    web = npots.pot("web", "mkdir -p /www && echo hello-alias > /www/index.html && exec httpd -f -p 80 -h /www",
                    alias)
    npots.start(web)
    assert wait_http("http://198.51.100.50/") == "hello-alias\n"
    assert upstream_get(net, "http://198.51.100.50/") == "hello-alias\n"
    assert upstream_get(net, "http://[2001:db8:51::50]/") == "hello-alias\n"
    npots.stop(web)
    addrs = net.run_in(net.host, "ip", "-o", "addr", "show", "dev", "up0").stdout
    assert "198.51.100.50" not in addrs and "2001:db8:51::50" not in addrs


def test_hosts_plan_rewrites_a_running_pots_hosts(npots: NetPots) -> None:
    from ladle.plan.executor import Executor

    spec = npots.pot("web", "sleep 100000", bridge_net("web", 2, hosts="10.192.0.2 web\n"))
    npots.start(spec)
    assert npots.sh(spec, "cat /etc/hosts")[1] == "10.192.0.2 web\n"
    spec.net["hosts"] = "10.192.0.2 web\n10.192.0.3 db\n"
    Executor(npots.ctx).run("hosts", "web", npots.host.hosts_plan(spec, npots.run("web")))
    assert npots.sh(spec, "cat /etc/hosts")[1] == "10.192.0.2 web\n10.192.0.3 db\n"
    npots.stop(spec)


def test_gc_removes_what_a_crash_left(npots: NetPots, net: Net) -> None:
    """The pot ends without its stop's network steps (a crash): leftovers name it, and their
    plan removes its exports, its bridge and the table."""
    from ladle.hosts.linux.steps import LinuxStop, spec_to_json
    from ladle.plan.executor import Executor

    port = {"proto": "tcp", "pot_port": 80, "host_port": 8089}
    spec = npots.pot("web", HTTPD.format(name="web", port=80), bridge_net("web", 2, ports=[port]))
    run = npots.start(spec)
    Executor(npots.ctx).run("stop", "web", [LinuxStop(spec_to_json(spec), vars(run))])
    assert "interface ldbr0" in net.leftovers() and "nftables table inet ladle" in net.leftovers()
    assert "web" in npots.host.leftovers()
    Executor(npots.ctx).run("gc", "web", npots.host.leftover_plan("web"), on_crash="finish")
    assert net.leftovers() == []
    assert "web" not in npots.host.leftovers()


def test_a_failed_start_leaves_no_interface_or_rule(npots: NetPots, net: Net) -> None:
    """The veth name is taken on the host: the start fails with one line and undoes the rest."""
    from ladle.errors import LadleError

    spec = npots.pot("web", "sleep 100000", bridge_net("web", 2))
    net.run_in(net.host, "ip", "link", "add", spec.net["veth"], "type", "bridge")
    try:
        with pytest.raises(LadleError, match="veth"):
            npots.start(spec)
        assert net.leftovers() == [f"interface {spec.net['veth']}"]
    finally:
        net.run_in(net.host, "ip", "link", "del", spec.net["veth"])
