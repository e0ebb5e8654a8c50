"""Address arithmetic of the IPAM: which addresses a network hands out, the next free one,
whether a chosen one may be used, and where a private bridge fits. Pure functions of what the
state store holds; `net.steps` runs them inside the store's write transaction.

A network's first host address is its gateway (the bridge's own address, pot's POT_GATEWAY). A
pot never gets the network address, the gateway, an IPv4 broadcast address, nor one of the 128
highest addresses of an IPv6 /64 (subnet anycast addresses, RFC 2526).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from ladle.errors import Exists, UsageError

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
PUBLIC = "public"  # the public bridge's network; private bridges have names of their own
MIN_PREFIX4 = 30  # the smallest private bridge: network, gateway, one pot, broadcast
ANYCAST6 = 128  # RFC 2526: the highest 128 interface identifiers of a /64 are reserved


def parse(text: str) -> Network:
    return ip_network(text)


def parse4(text: str) -> IPv4Network:
    return IPv4Network(text)


def parse6(text: str) -> IPv6Network:
    return IPv6Network(text)


def gateway(net: Network) -> Address:
    """The bridge's own address, the pots' default route: the first host address."""
    return net.network_address + 1


def last(net: Network) -> int:
    """The highest address a pot may get, as an integer."""
    top = int(net.broadcast_address)
    return top - 1 if net.version == 4 else top - ANYCAST6


def block_for(size: int) -> int:
    """The IPv4 prefix length of a private bridge for `size` pots: the smallest block holding
    them besides its network address, gateway and broadcast (-S 1 gives a /30, 2 to 5 a /29,
    6 to 13 a /28). pot's potnet counts the gateway among the SIZE; ladle does not."""
    if size < 1:
        raise UsageError(f"-S takes a number of pots from 1, not {size}")
    bits = max((size + 2).bit_length(), 32 - MIN_PREFIX4)
    return 32 - bits


def first_free(name: str, net: Network, used: set[Address], holes: list[Network]) -> Address:
    """The lowest address after the gateway that no lease holds and no hole (a private bridge
    carved out of this network) contains."""
    spans = sorted((int(h.network_address), int(h.broadcast_address)) for h in holes)
    taken = {int(a) for a in used}
    cand, top = int(gateway(net)) + 1, last(net)
    while cand <= top:
        span = next((s for s in spans if s[0] <= cand <= s[1]), None)
        if span:
            cand = span[1] + 1
        elif cand in taken:
            cand += 1
        else:
            return ip_address(cand)
    raise UsageError(f"network {name} ({net}) has no free address left")


def check(name: str, net: Network, text: str, used: dict[Address, str], holes: dict[str, Network]) -> Address:
    """A chosen address, if a pot may lease it on network `name`; else one line saying why."""
    try:
        addr = ip_address(text)
    except ValueError:
        raise UsageError(f"{text!r} is not an IP address") from None
    if addr.version != net.version:
        raise UsageError(f"{addr} is not an IPv{net.version} address (network {name} is {net})")
    if addr not in net:
        raise UsageError(f"{addr} is outside network {name} ({net})")
    why = ("the network address" if addr == net.network_address else "the gateway" if addr == gateway(net)
           else "the broadcast address" if net.version == 4 and addr == net.broadcast_address
           else "a reserved anycast address" if int(addr) > last(net) else None)
    if why:
        raise UsageError(f"{addr} is {why} of network {name} ({net})")
    for hole, hnet in holes.items():
        if addr in hnet:
            raise UsageError(f"{addr} is in private bridge {hole}'s network {hnet}")
    if addr in used:
        raise Exists(f"{addr} is already leased to pot {used[addr]} on network {name}")
    return addr


def carve(parent: IPv4Network, prefixlen: int, bridges: dict[str, Network], used: dict[Address, str]) -> IPv4Network:
    """The first block of `prefixlen` in `parent` that overlaps no bridge and holds no address in
    use (the public bridge's leases, its network address, gateway and broadcast)."""
    if prefixlen < parent.prefixlen:
        raise UsageError(f"a /{prefixlen} does not fit in the IPv4 network {parent}")
    size = 1 << (32 - prefixlen)
    obstacles = sorted([(int(n.network_address), int(n.broadcast_address)) for n in bridges.values()]
                       + [(int(a), int(a)) for a in used])
    cand = int(parent.network_address)
    for lo, hi in obstacles:
        if hi < cand:
            continue
        if lo >= cand + size:
            break
        cand = -(-(hi + 1) // size) * size  # the next aligned block after the obstacle
    if cand + size - 1 > int(parent.broadcast_address):
        raise UsageError(f"no free /{prefixlen} left in the IPv4 network {parent}")
    return IPv4Network((cand, prefixlen))


def check_block(parent: IPv4Network, text: str, bridges: dict[str, Network], used: dict[Address, str]) -> IPv4Network:
    """A chosen private bridge network: inside `parent`, overlapping no bridge, holding no
    address in use (`used` says what each one is)."""
    try:
        net = IPv4Network(text)
    except ValueError as e:
        raise UsageError(f"-n {text!r}: {e}") from None
    if not net.subnet_of(parent) or net.prefixlen > MIN_PREFIX4:
        raise UsageError(f"-n {net}: a private bridge's network is a /{MIN_PREFIX4} or larger inside {parent}")
    for other, onet in bridges.items():
        if net.overlaps(onet):
            raise Exists(f"-n {net} overlaps private bridge {other} ({onet})")
    inside = sorted(a for a in used if a in net)
    if inside:
        raise Exists(f"-n {net} holds {inside[0]}, {used[inside[0]]}")
    return net


def ula(global_id: str) -> IPv6Network:
    """The /48 of RFC 4193: fd00::/8 with the L bit set, then the 40-bit Global ID (hex)."""
    return IPv6Network((int("fd" + global_id, 16) << 80, 48))


def subnet6(prefix: IPv6Network, taken: list[Network]) -> IPv6Network | None:
    """The first /64 of `prefix` after the public bridge's (the first) that no bridge has; None
    when there is none (a /64 prefix has room for the public bridge only)."""
    have = {int(n.network_address) for n in taken}
    step = 1 << 64
    for cand in range(int(prefix.network_address) + step, int(prefix.broadcast_address), step):
        if cand not in have:
            return IPv6Network((cand, 64))
    return None


def public6(prefix: IPv6Network) -> IPv6Network:
    return IPv6Network((prefix.network_address, 64))
