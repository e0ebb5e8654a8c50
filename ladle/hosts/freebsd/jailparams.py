"""Pot attributes and the jail(8) parameters they become.

pot keeps a fixed set of attributes in pot.conf (pot reference §6) and turns them into
`jail -c` parameters at every start. ladle keeps the same names, the same creation defaults and
the same spellings of values ('YES'/'NO', numbers, 'new'/'inherit'/'disable'), so that existing
pot users and the nomad driver find what they expect; the parameters are passed explicitly on the
command line, never through jail.conf.
"""

from __future__ import annotations

from dataclasses import dataclass

from ladle.errors import UsageError
from ladle.hosts.base import NetSpec, yes_no
from ladle.hosts.freebsd.net import pot_end

BOOL, UINT, SYSV, TEXT = "bool", "uint", "sysv", "text"
SYSV_VALUES = ("new", "inherit", "disable")
SYSV_ATTRS = ("sysvshm", "sysvsem", "sysvmsg")


@dataclass(frozen=True)
class Attr:
    """One attribute: its type, pot's default at create, and the jail(8) parameter it sets."""

    kind: str
    default: str
    param: str = ""  # "" when the attribute is ladle's own business, not a jail parameter
    maximum: int = 2**31 - 1
    minimum: int = 0


# pot's creation defaults (pot reference §3.5 and §6), in pot's order.
ATTRS: dict[str, Attr] = {
    "persistent": Attr(BOOL, "YES"),
    "no-tmpfs": Attr(BOOL, "NO"),
    "enforce_statfs": Attr(UINT, "2", "enforce_statfs", maximum=2),
    "mount": Attr(BOOL, "NO", "allow.mount"),
    "fdescfs": Attr(BOOL, "NO", "mount.fdescfs"),
    "linprocfs": Attr(BOOL, "NO", "allow.mount.linprocfs"),
    "nullfs": Attr(BOOL, "NO", "allow.mount.nullfs"),
    "procfs": Attr(BOOL, "NO", "mount.procfs"),
    "tmpfs": Attr(BOOL, "NO", "allow.mount.tmpfs"),
    "zfs": Attr(BOOL, "NO", "allow.mount.zfs"),
    # pot's start passes these three always; here they are defaults that set-attr can turn off.
    "raw_sockets": Attr(BOOL, "YES", "allow.raw_sockets"),
    "socket_af": Attr(BOOL, "YES", "allow.socket_af"),
    "chflags": Attr(BOOL, "YES", "allow.chflags"),
    "sysvshm": Attr(SYSV, "new", "sysvshm"),
    "sysvsem": Attr(SYSV, "new", "sysvsem"),
    "sysvmsg": Attr(SYSV, "new", "sysvmsg"),
    "children": Attr(UINT, "0", "children.max"),
    "mlock": Attr(BOOL, "NO", "allow.mlock"),
    # Ruleset 0 hides nothing: every device node of the host would appear in the jail's /dev.
    "devfs_ruleset": Attr(UINT, "4", "devfs_ruleset", maximum=65535, minimum=1),
    "exec_stop": Attr(TEXT, "", "exec.stop"),
    "stop_timeout": Attr(UINT, "10", "stop.timeout", maximum=86400),  # a day, as on Linux
}

# Accepted by check_attr but never stored by itself: it stands for the three sysv* attributes
# (pot 0.15.4 had `sysvipc`; jail(8) documents allow.sysvipc as 'all three set to inherit').
SHORTHANDS = {"sysvipc": SYSV_ATTRS}

# The order in which boolean allow.* attributes appear on the `jail -c` line.
ALLOW_ORDER = ("mlock", "mount", "nullfs", "tmpfs", "zfs", "linprocfs", "raw_sockets", "socket_af", "chflags")


def attr_defaults() -> dict[str, str]:
    """The attributes written at create, with pot's defaults."""
    return {name: a.default for name, a in ATTRS.items()}


def check_attr(name: str, value: str) -> str:
    """Validate `value` for attribute `name` and return it in its stored spelling."""
    if name in SHORTHANDS:
        return _check_sysv(name, value)
    attr = ATTRS.get(name)
    if attr is None:
        known = ", ".join(sorted([*ATTRS, *SHORTHANDS]))
        raise UsageError(f"unknown attribute {name!r} (known: {known})")
    if attr.kind == BOOL:
        return yes_no(name, value)
    if attr.kind == UINT:
        v = value.strip()
        if not v.isdigit() or not v.isascii() or not attr.minimum <= int(v) <= attr.maximum:
            raise UsageError(f"attribute {name} takes a whole number from {attr.minimum} to {attr.maximum},"
                             f" not {value!r}")
        return str(int(v))
    if attr.kind == SYSV:
        return _check_sysv(name, value)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"attribute {name} must not contain control characters (newlines, tabs...)")
    return value


def _check_sysv(name: str, value: str) -> str:
    v = value.strip().lower()
    if v not in SYSV_VALUES:
        raise UsageError(f"attribute {name} takes new, inherit or disable, not {value!r}")
    return v


def expand_attr(name: str, value: str) -> dict[str, str]:
    """The attributes to store for `name=value`: the shorthand `sysvipc` becomes its three parts."""
    value = check_attr(name, value)
    return {part: value for part in SHORTHANDS.get(name, (name,))}


def effective(attrs: dict[str, str]) -> dict[str, str]:
    """Every attribute with a value: defaults for missing ones, and a stored `sysvipc` applied.

    A stored `sysvipc` (from a store that did not expand it) wins over the three sysv* values.
    """
    out = attr_defaults()
    for name, value in attrs.items():
        if name in ATTRS:
            out[name] = check_attr(name, value)
    if "sysvipc" in attrs:
        out.update(expand_attr("sysvipc", attrs["sysvipc"]))
    return out


def create_params(name: str, path: str, hostname: str, attrs: dict[str, str], network: str,
                  osrelease: str | None = None, stack: str = "ipv4", net: NetSpec | None = None) -> list[str]:
    """The `jail -c` parameters of a pot, in a stable order.

    Always: name, path, host.hostname, `persist` (only while setting up: the start plan turns it
    off once the command runs, for non-persistent pots), devfs with the pot's ruleset,
    enforce_statfs, children.max, no hostname changes from inside. Then only the allow.* and
    mount.* that attributes turn on (raw_sockets, socket_af and chflags are on unless turned
    off), the SysV IPC modes, the stop settings, exec.clean and the network (`network_params`).
    """
    a = effective(attrs)
    params = [f"name={name}", f"path={path}", f"host.hostname={hostname}"]
    if osrelease:
        params.append(f"osrelease={osrelease}")
    params += ["persist", "mount.devfs", f"devfs_ruleset={a['devfs_ruleset']}",
               f"enforce_statfs={a['enforce_statfs']}", f"children.max={a['children']}",
               "allow.set_hostname=false"]
    params += [ATTRS[n].param for n in ALLOW_ORDER if a[n] == "YES"]
    params += [ATTRS[n].param for n in ("procfs", "fdescfs") if a[n] == "YES"]
    params += [f"{n}={a[n]}" for n in SYSV_ATTRS]
    params.append(f"stop.timeout={a['stop_timeout']}")
    if a["exec_stop"]:
        params.append(f"exec.stop={a['exec_stop']}")
    params.append("exec.clean")
    params += network_params(network, stack, net)
    return params


STACK_PARAMS = {"ipv4": ["ip4=inherit", "ip6=disable"], "ipv6": ["ip4=disable", "ip6=inherit"],
                "dual": ["ip4=inherit", "ip6=inherit"]}


def network_params(network: str, stack: str = "ipv4", net: NetSpec | None = None) -> list[str]:
    """'inherit' shares the host's addresses of the IP versions in `stack` (pot's
    POT_NETWORK_STACK) and disables the other; 'none' gives the jail its own (VNET) stack that
    holds only lo0; the bridge types a VNET stack and the jail's end of the pot's epair
    (`vnet.interface`); 'alias' the pot's addresses in jail(8)'s `IF|ADDR/PREFIX` form, which
    makes jail(8) add them to their interfaces (a family without any is disabled)."""
    if stack not in STACK_PARAMS:
        raise UsageError(f"network stack {stack!r} is not one of {', '.join(STACK_PARAMS)}")
    if network == "inherit":
        return STACK_PARAMS[stack]
    if network == "none":
        return ["vnet=new"]
    if network in ("public-bridge", "private-bridge"):
        if not net or not net.get("veth"):
            raise UsageError(f"network {network}: the engine gave no interface for the pot")
        return ["vnet=new", f"vnet.interface={pot_end(net['veth'])}"]
    if network == "alias":
        aliases = (net or {}).get("aliases") or []
        if not aliases:
            raise UsageError("network alias needs at least one address (-i [IF|]IP)")
        params = []
        for version, key in ((4, "ip4"), (6, "ip6")):
            mine = [a for a in aliases if (":" in a["address"]) == (version == 6)]
            if mine:
                params.append(f"{key}.addr=" + ",".join(f"{a['interface']}|{a['address']}/{a['prefixlen']}"
                                                        for a in mine))
            else:
                params.append(f"{key}=disable")
        return params
    raise UsageError(f"network {network!r} is not one of inherit, none, alias, public-bridge, private-bridge")


def stop_config(name: str, exec_stop: str, stop_timeout: str) -> str:
    """A one-jail jail.conf(5) for `jail -f - -r NAME`.

    exec.stop and stop.timeout are pseudo-parameters: jail(8) uses them while it runs and the
    kernel does not keep them, so `jail -r NAME` alone would skip the pot's exec.stop and use the
    default timeout. pot pipes the same kind of config into `jail -f- -r` for this reason.
    """
    lines = [f"{name} {{"]
    if exec_stop:
        lines.append(f"    exec.stop = {conf_quote(exec_stop)};")
    lines += [f"    stop.timeout = {stop_timeout};", "    exec.clean;", "}"]
    return "\n".join(lines) + "\n"


def conf_quote(value: str) -> str:
    """A jail.conf(5) double-quoted string: backslash quotes '\\', '"' and '$' (no expansion)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
