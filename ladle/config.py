"""Host configuration: built-in defaults, then the config file, then LADLE_* variables, then flags.

The file is TOML (`/etc/ladle/ladle.toml` on Linux, `/usr/local/etc/ladle.toml` on FreeBSD, or
`$LADLE_CONFIG`), with top-level keys matching the fields of `Config`, e.g.::

    root = "/srv/ladle"
    mirror = "https://download.freebsd.org/releases"
    arch = "amd64"
    stack = "dual"      # ipv4 (default), ipv6 or dual: the IP versions a pot may use, as pot's POT_NETWORK_STACK
    max_unpacked_size = "16G"   # the most a --from-tar tarball may unpack to (bytes, or K, M, G, T)
    max_tar_members = 500000    # the most members it may have
    max_tar_depth = 256         # the deepest path in it, in components
    network = "10.192.0.0/10"   # the IPv4 network of the public bridge; private bridges are carved from it
    network6 = "fd00:1:2::/48"  # the IPv6 prefix (/48 to /64); default: a ULA /48 made once per state root
    extif = "eth0"      # the host interface of alias addresses given without one; default: the IPv4 default route's
    flavours_dir = "/srv/flavours"  # where `create -f NAME` looks; default /etc/ladle/flavours (FreeBSD:
                                    # /usr/local/etc/ladle/flavours)
    pids_limit = 2048   # the most processes a pot may have unless `set-rss --pids` says otherwise (0: none)

Every number has bounds (`BOUNDS`): a value out of them is refused when the file is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields

from ladle.errors import UsageError

_DEFAULT_ROOT = {"linux": "/var/lib/ladle", "freebsd": "/var/db/ladle"}
_CONFIG_PATH = {"linux": "/etc/ladle/ladle.toml", "freebsd": "/usr/local/etc/ladle.toml"}
STACKS = ("ipv4", "ipv6", "dual")
IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # an interface name: IFNAMSIZ is 15 characters and the NUL
# A Unix socket's path, the monitor's below the root among them, fits in sun_path (with its NUL).
_SUN_PATH = {"linux": 108, "freebsd": 104}
_SOCKET = "/run/monitor.sock"
GiB = 1 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": GiB, "T": 1 << 40}
# (lowest, highest) of each number: past them a value is a mistake (a day to stop a pot; a depth
# no PATH_MAX allows) or could overflow what uses it.
BOUNDS = {"stop_timeout": (0, 86400), "max_unpacked_size": (1 << 20, 1 << 50),
          "max_tar_members": (1, 100_000_000), "max_tar_depth": (1, 2048), "pids_limit": (0, 4_194_304)}


@dataclass
class Config:
    host: str
    root: str
    mirror: str = "https://download.freebsd.org/releases"
    arch: str = ""  # hw.machine of FreeBSD bases; '' for this host's (uname -m, uname -p)
    stop_timeout: int = 10
    stack: str = "ipv4"
    max_unpacked_size: int = 16 * GiB
    max_tar_members: int = 500_000
    max_tar_depth: int = 256
    network: str = "10.192.0.0/10"  # pot's POT_NETWORK
    network6: str = ""  # '' for the state root's own ULA prefix (RFC 4193, in the settings table)
    extif: str = ""  # pot's POT_EXTIF, for `-N alias -i IP`; '' for the interface of the IPv4 default route
    flavours_dir: str = ""  # `create -f NAME` finds NAME and NAME.sh here; '' for /etc/ladle/flavours
    # (/usr/local/etc/ladle/flavours on FreeBSD)
    pids_limit: int = 2048  # a pot's pids limit unless set-rss --pids sets its own (as Podman's); 0: none


def load(host: str, root: str | None = None) -> Config:
    """The configuration for `host`, with `root` (from --root) taking precedence over all else."""
    cfg = Config(host=host, root=_DEFAULT_ROOT[host])
    path = os.environ.get("LADLE_CONFIG") or _CONFIG_PATH[host]
    if os.path.exists(path):
        _apply_file(cfg, path)
    if os.environ.get("LADLE_ROOT"):
        cfg.root = _root(os.environ["LADLE_ROOT"], "LADLE_ROOT", host)
    if root is not None:
        cfg.root = _root(root, "--root", host)
    cfg.root = os.path.abspath(cfg.root)
    return cfg


def _root(path: str, where: str, host: str) -> str:
    """A state root: given, and not '/', whose run/, logs/ and locks/ ladle would take over."""
    if not path:
        raise UsageError(f"{where} must not be empty")
    if "\0" in path:
        raise UsageError(f"{where} must not contain a NUL byte")
    if os.path.abspath(path) == "/":
        raise UsageError(f"{where} must not be /: the state root is a directory of ladle's own")
    most = _SUN_PATH[host] - 1 - len(_SOCKET)
    if len(os.fsencode(os.path.abspath(path))) > most:
        raise UsageError(f"{where} is too long: at most {most} bytes, for the monitor's socket {_SOCKET}")
    return path


def parse_size(value: int | str, key: str) -> int:
    """A size in bytes, from a number or a string such as '512M' or '16G' (powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "")
    if not number.isascii() or not number.isdigit():
        raise UsageError(f"{key} takes a size such as 16G or 512M (bytes, or K, M, G, T), not {value!r}")
    return int(number) * _UNITS[unit]


def _apply_file(cfg: Config, path: str) -> None:
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read config {path}: {e}") from None
    known = {f.name: f.type for f in fields(cfg)}
    for key, value in data.items():
        if key not in known or key == "host":
            raise UsageError(f"config {path}: unknown key {key!r}")
        if key == "max_unpacked_size" and isinstance(value, str):
            value = parse_size(value, f"config {path}: {key}")
        want = type(getattr(cfg, key))
        if not isinstance(value, want) or isinstance(value, bool):
            raise UsageError(f"config {path}: {key} must be a {want.__name__}")
        low, high = BOUNDS.get(key, (value, value))
        if not low <= value <= high:
            raise UsageError(f"config {path}: {key} must be from {low} to {high}, not {value}")
        setattr(cfg, key, value)
    if "network" in data or "network6" in data:
        _networks(cfg, path)
    if cfg.stack not in STACKS:
        raise UsageError(f"config {path}: stack must be {', '.join(STACKS)}, not {cfg.stack!r}")
    if cfg.extif and not IFNAME.fullmatch(cfg.extif):
        raise UsageError(f"config {path}: extif must be an interface name (at most 15 letters, digits, '.', '_' "
                         f"or '-'), not {cfg.extif!r}")
    if cfg.flavours_dir and (not os.path.isabs(cfg.flavours_dir) or "\0" in cfg.flavours_dir):
        raise UsageError(f"config {path}: flavours_dir must be an absolute path, not {cfg.flavours_dir!r}")
    cfg.root = _root(cfg.root, f"config {path}: root", cfg.host)


def _networks(cfg: Config, path: str) -> None:
    """The IPv4 network must leave room for a bridge and a pot (/30 at most); an IPv6 prefix is
    a /48 to a /64, whose first /64 is the public bridge's and the next ones private bridges'."""
    import ipaddress

    for key, version, lengths in (("network", 4, range(0, 31)), ("network6", 6, range(48, 65))):
        value = getattr(cfg, key)
        if key == "network6" and value == "":
            continue
        try:
            net = ipaddress.ip_network(value)
        except ValueError as e:
            raise UsageError(f"config {path}: {key}: {e}") from None
        if net.version != version or net.prefixlen not in lengths:
            raise UsageError(f"config {path}: {key} must be an IPv{version} network of prefix length "
                             f"{lengths[0]} to {lengths[-1]}, not {value}")
        setattr(cfg, key, str(net))
