"""Bridge networking through the CLI (the engine's leases and RuntimeSpec.net, the Linux driver's
steps), run as `nsenter --net=/run/netns/HOST ladle ...` in a host namespace (tests/netns.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import leaks
from tests.conftest import LADLE, Ladle, _teardown
from tests.netns import HOST4, Net
from tests.registry_fixtures import Layout, Registry, registry  # noqa: F401  (a fixture)
from tests.test_images_run import _add, busybox_layer, image, tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, nftables)")


class NsLadle(Ladle):
    """The CLI run inside the host namespace of `net`."""

    def __init__(self, root: Path, net: Net) -> None:
        super().__init__(root)
        self.net = net

    def __call__(self, *args: str, check: bool = True, input: str | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.net.prefix(), *LADLE, "--root", str(self.root), *args], capture_output=True,
                              text=True, input=input, timeout=timeout, env={**os.environ, "LADLE_LOCK_TIMEOUT": "60"})
        if check and proc.returncode != 0:
            raise AssertionError(f"ladle {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc


@pytest.fixture
def nsladle(tmp_path: Path, net: Net) -> Iterator[NsLadle]:
    cli = NsLadle(tmp_path / "root", net)
    cli("init")
    cli("create-base", "-r", "busybox")
    try:
        yield cli
    finally:
        _teardown(cli)
        # its monitor lives in the host namespace, where the session's leak check counts it as a
        # pot's process: it must be gone (idle) before the test ends
        left = leaks.monitors_gone(str(tmp_path), 10)
        assert not left, f"monitors left: {left}"


def host_get(net: Net, url: str, timeout: float = 10) -> str:
    """The body of `url` fetched from the host namespace, retried until the server listens."""
    code = ("import sys, time, urllib.request\n"
            "end = time.monotonic() + float(sys.argv[2])\n"
            "while True:\n"
            "    try:\n"
            "        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode(), end=''); break\n"
            "    except OSError:\n"
            "        if time.monotonic() > end: raise\n"
            "        time.sleep(0.05)\n")
    return net.run_in(net.host, sys.executable, "-c", code, url, str(timeout)).stdout


def test_twenty_pots_started_at_once(nsladle: NsLadle, net: Net) -> None:
    names = [f"p{i}" for i in range(20)]
    for name in names:
        nsladle("create", "-p", name, "-b", "busybox", "-N", "public-bridge", "-S", "dual",
                "-c", f"mkdir -p /www && echo hello-{name} > /www/index.html && exec httpd -f -p 80 -h /www")
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda n: nsladle("start", n, check=False), names))
    assert [r.returncode for r in results] == [0] * len(names), [r.stderr for r in results if r.returncode]
    leases = json.loads(nsladle("network", "show", "public", "--json").stdout)["leases"]
    v4 = {row["pot"]: row["address"] for row in leases if ":" not in row["address"]}
    assert sorted(v4) == sorted(names) and len(set(v4.values())) == len(names)
    for name, address in v4.items():
        assert host_get(net, f"http://{address}/") == f"hello-{name}\n"
    nsladle("export-ports", "-p", "p7", "-e", "80:8087")
    nsladle("stop", "p7")
    nsladle("start", "p7")
    assert host_get(net, f"http://{HOST4}:8087/") == "hello-p7\n"
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda n: nsladle("stop", n, check=False), names))
    assert [r.returncode for r in results] == [0] * len(names), [r.stderr for r in results if r.returncode]
    assert net.leftovers() == []
    for name in names:
        nsladle("destroy", "-p", name)
    assert json.loads(nsladle("network", "show", "public", "--json").stdout)["leases"] == []
    addrs = net.run_in(net.host, "ip", "-o", "addr").stdout
    assert "10.192." not in addrs


def test_run_rm_on_public_bridge_with_export(nsladle: NsLadle, net: Net) -> None:
    out = nsladle("run", "--rm", "-N", "public-bridge", "-e", "80:8090", "busybox", "--", "sh", "-c",
                  "ip -o -4 addr show dev eth0; ip route").stdout
    assert "10.192." in out and "default via 10.192.0.1" in out
    assert net.leftovers() == []
    assert json.loads(nsladle("network", "show", "public", "--json").stdout)["leases"] == []


def test_publish_all_exports_the_images_exposed_ports(nsladle: NsLadle, net: Net, registry: Registry,  # noqa: F811
                                                      tmp_path: Path) -> None:
    """`run -P`: each ExposedPorts entry on the lowest free host port, unless -e names it; traffic
    from the host reaches the image's server through it."""
    def www(t: tarfile.TarFile) -> None:
        _add(t, "www", "d", mode=0o755)
        _add(t, "www/index.html", data=b"published\n")
    lay = Layout(tmp_path / "layout")
    lay.tag("web", image(lay, [tar(busybox_layer), tar(www)], "gzip", {
        "Cmd": ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"],
        "ExposedPorts": {"80/tcp": {}, "81/tcp": {}, "53/udp": {}}}))
    registry.push(lay, "web", "test/web:1")
    ref = f"{registry.host}/test/web:1"
    Ladle(nsladle.root)("pull", "-q", ref)  # from the root namespace, whose loopback has the registry
    name = nsladle("run", "-d", "-P", "-e", "81:9081", "-N", "public-bridge", ref).stdout.strip().split()[-1]
    info = nsladle("info", "-p", name).stdout
    exports = {line.split()[1].split("->")[1]: int(line.split()[1].split("->")[0])
               for line in info.splitlines() if line.startswith("export:")}
    assert exports.keys() == {"80/tcp", "81/tcp", "53/udp"} and exports["81/tcp"] == 9081, info
    assert {exports["80/tcp"], exports["53/udp"]} == {1024, 1025}, info  # the lowest free, as pot's export-ports
    assert host_get(net, f"http://{HOST4}:{exports['80/tcp']}/") == "published\n"
    nsladle("stop", name)
    assert net.leftovers() == []


def test_dry_run_renders_the_network_commands(nsladle: NsLadle) -> None:
    nsladle("create", "-p", "web", "-b", "busybox", "-N", "public-bridge", "-S", "dual", "-c", "true")
    out = nsladle("start", "--dry-run", "web").stdout
    assert 'ip link add ldv' in out and 'type veth peer name eth0 address 02:1a:0a:c0:00:02 netns "$PID1"' in out
    assert 'nsenter --target "$PID1" --net ip addr add 10.192.' in out
    assert "nodad" in out and "nft -f -" in out


def test_pots_on_a_bridge_reach_each_other_by_name(nsladle: NsLadle, net: Net) -> None:
    nsladle("create", "-p", "web", "-b", "busybox", "-N", "public-bridge", "-S", "dual",
            "-c", "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www")
    nsladle("create", "-p", "cli", "-b", "busybox", "-N", "public-bridge", "-S", "dual", "-c", "sleep 100000")
    nsladle("start", "web")
    nsladle("start", "cli")
    get = ("for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web 80 | grep hello"
           " && break; sleep 0.2; done")
    assert nsladle("exec", "cli", "--", "sh", "-c", get).stdout.strip() == "hello-web"
    # web was running when cli came: its /etc/hosts was rewritten in place to name cli
    hosts = nsladle("exec", "web", "--", "cat", "/etc/hosts").stdout.split()
    assert "cli" in hosts and "web" in hosts
    nsladle("destroy", "-p", "cli", "-F")  # its lease released: its name goes too
    assert "cli" not in nsladle("exec", "web", "--", "cat", "/etc/hosts").stdout.split()
    nsladle("stop", "web")
    assert net.leftovers() == []
