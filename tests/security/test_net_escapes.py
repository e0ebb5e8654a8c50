"""A pot's root against the host's network: its loopback through the bridge (CVE-2020-8558).

ladle turns on route_localnet on its bridges (DNAT from 127.0.0.1 needs it), so the host would
accept a packet for 127.0.0.0/8 arriving there. A pot keeps CAP_NET_RAW: `net_probe` builds a UDP
datagram for 127.0.0.1 and sends it to the gateway's MAC. The host listens on all its addresses;
the same datagram for the gateway's address arrives (the probe works), the one for 127.0.0.1 must
not, and does once ladle's raw-prerouting drop is flushed (the rule is what stops it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from ladle.hosts.linux.netlink import bridge_mac
from tests.netns import NetPots, bridge_net

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def net_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed for the escape probes (make bootstrap installs it)"
    out = tmp_path_factory.mktemp("net_probe") / "net_probe"
    subprocess.run([gcc, "-static", "-O1", "-o", str(out), str(HERE / "net_probe.c")], check=True)
    return out


def _received(sock: socket.socket) -> set[str]:
    got = set()
    try:
        while True:
            got.add(sock.recv(100).decode())
    except (BlockingIOError, TimeoutError):
        return got


def test_pot_cannot_reach_host_loopback_through_its_bridge(npots: NetPots, net_probe: Path) -> None:
    spec = npots.pot("hostile", "sleep 100000", bridge_net("hostile", 2))
    (npots.upper("hostile")).mkdir(parents=True, exist_ok=True)
    shutil.copy(net_probe, npots.upper("hostile") / "net_probe")
    npots.start(spec)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # in the host namespace
        sock.bind(("0.0.0.0", 5353))
        sock.settimeout(1.0)

        def send(dst: str, payload: str) -> str:
            return npots.sh(spec, f"/net_probe eth0 {bridge_mac('ldbr0')} 10.192.0.2 {dst} 5353 {payload}")[1]

        assert send("10.192.0.1", "control").strip() == "SENT"
        assert send("127.0.0.1", "escape").strip() == "SENT"
        got = _received(sock)
        assert "control" in got, "the probe's datagram for the gateway never arrived: the probe proves nothing"
        assert "escape" not in got, "a pot reached the host's loopback through its bridge"
        # without ladle's drop the same datagram gets through: that rule is the protection
        subprocess.run(["nft", "flush", "chain", "inet", "ladle", "raw"], check=True)
        send("127.0.0.1", "unguarded")
        assert "unguarded" in _received(sock)
    npots.stop(spec)
