"""Interfaces, addresses and routes of bridge and alias pots, through netlink (pyroute2).

pyroute2 costs ~100 ms to import, so it is imported here only, by the steps that need it. A
netlink socket belongs to the network namespace it was opened in: the pot's side is configured
through a socket opened after a moment's setns into the pot's namespace (the descriptor of
`/proc/PID1/ns/net`, opened while its start time was checked), so no helper process is forked.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterator
from ipaddress import ip_address
from typing import Any

from ladle.errors import HostError

IFA_F_NODAD = 0x02
AF_INET6 = 10
POT_IF = "eth0"


def bridge_mac(bridge: str) -> str:
    """A fixed, locally administered MAC for a bridge: without one it takes its lowest port's, which
    changes as pots come and go and leaves the pots' ARP entries for the gateway stale."""
    digest = hashlib.sha256(bridge.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def pot_mac(address: str) -> str:
    """The MAC of a pot's eth0, from its address (as Docker does): the host's neighbour entry for
    an address stays right when the pot restarts, or another pot gets the address, instead of
    pointing for seconds at the MAC of a veth that is gone."""
    packed = ip_address(address).packed
    tail = packed[-4:] if len(packed) == 4 else hashlib.sha256(packed).digest()[:4]
    return "02:1a:" + ":".join(f"{b:02x}" for b in tail)


def _ipr() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


@contextlib.contextmanager
def socket(netns_fd: int | None = None) -> Iterator[Any]:
    """A netlink socket of our network namespace, or of the one `netns_fd` names."""
    if netns_fd is None:
        ipr = _ipr()
    else:
        from ladle.hosts.linux import syscalls as sc

        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(netns_fd, sc.CLONE_NEWNET)
            try:
                ipr = _ipr()
            finally:
                sc.setns(own, sc.CLONE_NEWNET)
        finally:
            os.close(own)
    try:
        yield ipr
    finally:
        ipr.close()


def failure(e: BaseException, what: str) -> HostError:
    """One line for a netlink error; a kernel without the feature says so."""
    code = getattr(e, "code", None) or getattr(e, "errno", None)
    if code in (errno.EOPNOTSUPP, errno.ENOTSUP if hasattr(errno, "ENOTSUP") else -1):
        return HostError(f"cannot {what}: this kernel does not support it (built without the feature)")
    text = os.strerror(code) if isinstance(code, int) and code > 0 else str(e)
    return HostError(f"cannot {what}: {text}")


def index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _has_addr(ipr: Any, idx: int, address: str) -> bool:
    want = ip_address(address)
    return any(ip_address(a.get("IFA_ADDRESS")) == want for a in ipr.get_addr(index=idx) if a.get("IFA_ADDRESS"))


def ensure_bridge(ipr: Any, bridge: str, gateways: list[dict[str, Any]]) -> bool:
    """The bridge up with its gateway addresses (IPv6 without DAD); True when it was made now."""
    idx = index(ipr, bridge)
    made = idx is None
    try:
        if idx is None:
            ipr.link("add", ifname=bridge, kind="bridge", address=bridge_mac(bridge))
            idx = index(ipr, bridge)
            assert idx is not None
        for gw in gateways:
            if not _has_addr(ipr, idx, gw["gateway"]):
                v6 = ":" in gw["gateway"]
                ipr.addr("add", index=idx, address=gw["gateway"], prefixlen=gw["prefixlen"],
                         **({"flags": IFA_F_NODAD, "family": AF_INET6} if v6 else {}))
        ipr.link("set", index=idx, state="up")
    except Exception as e:
        if made:
            remove_link(ipr, bridge, "bridge")
        raise failure(e, f"set up bridge {bridge}") from None
    return made


def bridge_ports(ipr: Any, bridge: str) -> list[str]:
    idx = index(ipr, bridge)
    if idx is None:
        return []
    return [str(link.get("ifname")) for link in ipr.get_links() if link.get("IFLA_MASTER") == idx]


def add_veth(ipr: Any, veth: str, bridge: str, pot_netns: int, mac: str) -> None:
    """The pot's pair: `veth` on the bridge here, its peer `eth0` (with `mac`) in the pot's namespace."""
    try:
        ipr.link("add", ifname=veth, kind="veth", peer={"ifname": POT_IF, "net_ns_fd": pot_netns, "address": mac})
    except Exception as e:
        raise failure(e, f"create veth pair {veth}") from None
    try:
        idx, br = index(ipr, veth), index(ipr, bridge)
        ipr.link("set", index=idx, master=br, state="up")
    except Exception as e:
        remove_link(ipr, veth, "veth")
        raise failure(e, f"put {veth} on bridge {bridge}") from None


def configure_pot(ipr: Any, addresses: list[dict[str, Any]]) -> None:
    """Inside the pot: eth0's addresses (IPv6 without DAD), eth0 up, default routes to the gateways."""
    try:
        idx = index(ipr, POT_IF)
        for a in addresses:
            v6 = ":" in a["address"]
            ipr.addr("add", index=idx, address=a["address"], prefixlen=a["prefixlen"],
                     **({"flags": IFA_F_NODAD, "family": AF_INET6} if v6 else {}))
        ipr.link("set", index=idx, state="up")
        for a in addresses:
            v6 = ":" in a["address"]
            ipr.route("add", dst="::/0" if v6 else "0.0.0.0/0", gateway=a["gateway"],
                      **({"family": AF_INET6} if v6 else {}))
    except Exception as e:
        raise failure(e, "configure the pot's eth0") from None


def kind(ipr: Any, name: str) -> str | None:
    """The interface's kind (veth, bridge, ...); None if there is none, or it went meanwhile (a
    pot's veth goes with its network namespace when its pid 1 dies)."""
    idx = index(ipr, name)
    if idx is None:
        return None
    try:
        return str(ipr.get_links(idx)[0].get(("linkinfo", "kind")))
    except Exception as e:
        if getattr(e, "code", None) == errno.ENODEV:
            return None
        raise


def remove_link(ipr: Any, name: str, of_kind: str | None = None) -> bool:
    """Delete an interface (a veth takes its peer with it); missing is fine, and so is one of
    another kind than `of_kind` (not ours: it is left alone). True if it was there."""
    idx = index(ipr, name)
    if idx is None or (of_kind is not None and kind(ipr, name) != of_kind):
        return False
    try:
        ipr.link("del", index=idx)
    except Exception as e:
        if getattr(e, "code", None) != errno.ENODEV:
            raise failure(e, f"delete interface {name}") from None
    return True


def links(ipr: Any, prefix: str) -> list[str]:
    return [str(n) for n in (link.get("ifname") for link in ipr.get_links()) if str(n).startswith(prefix)]


def add_alias(ipr: Any, interface: str, address: str, prefixlen: int) -> None:
    idx = index(ipr, interface)
    if idx is None:
        raise HostError(f"cannot add alias {address}: no interface {interface} on this host")
    if _has_addr(ipr, idx, address):
        raise HostError(f"cannot add alias {address}: {interface} has that address already")
    v6 = ":" in address
    try:
        ipr.addr("add", index=idx, address=address, prefixlen=prefixlen,
                 **({"flags": IFA_F_NODAD, "family": AF_INET6} if v6 else {}))
    except Exception as e:
        raise failure(e, f"add {address}/{prefixlen} to {interface}") from None


def del_alias(ipr: Any, interface: str, address: str, prefixlen: int) -> None:
    idx = index(ipr, interface)
    if idx is None or not _has_addr(ipr, idx, address):
        return
    try:
        ipr.addr("del", index=idx, address=address, prefixlen=prefixlen,
                 **({"family": AF_INET6} if ":" in address else {}))
    except Exception as e:
        if getattr(e, "code", None) != errno.EADDRNOTAVAIL:
            raise failure(e, f"remove {address} from {interface}") from None


def sysctl(path: str, value: str) -> None:
    """Write a /proc/sys knob; those under net/ are of the writer's network namespace."""
    try:
        with open("/proc/sys/" + path, "w") as f:
            f.write(value)
    except OSError as e:
        raise HostError(f"cannot set {path.replace('/', '.')}={value}: {e.strerror}") from None
