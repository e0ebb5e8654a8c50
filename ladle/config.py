"""Host configuration: built-in defaults, then the config file, then LADLE_* variables, then flags.

The file is TOML (`/etc/ladle/ladle.toml` on Linux, `/usr/local/etc/ladle.toml` on FreeBSD, or
`$LADLE_CONFIG`), with top-level keys matching the fields of `Config`, e.g.::

    root = "/srv/ladle"
    mirror = "https://download.freebsd.org/releases"
    arch = "amd64"
    stack = "dual"      # ipv4 (default), ipv6 or dual: the IP versions a pot may use, as pot's POT_NETWORK_STACK
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from ladle.errors import UsageError

_DEFAULT_ROOT = {"linux": "/var/lib/ladle", "freebsd": "/var/db/ladle"}
_CONFIG_PATH = {"linux": "/etc/ladle/ladle.toml", "freebsd": "/usr/local/etc/ladle.toml"}
STACKS = ("ipv4", "ipv6", "dual")


@dataclass
class Config:
    host: str
    root: str
    mirror: str = "https://download.freebsd.org/releases"
    arch: str = ""  # hw.machine of FreeBSD bases; '' for this host's (uname -m, uname -p)
    stop_timeout: int = 10
    stack: str = "ipv4"


def load(host: str, root: str | None = None) -> Config:
    """The configuration for `host`, with `root` (from --root) taking precedence over all else."""
    cfg = Config(host=host, root=_DEFAULT_ROOT[host])
    path = os.environ.get("LADLE_CONFIG") or _CONFIG_PATH[host]
    if os.path.exists(path):
        _apply_file(cfg, path)
    if os.environ.get("LADLE_ROOT"):
        cfg.root = os.environ["LADLE_ROOT"]
    if root:
        cfg.root = root
    cfg.root = os.path.abspath(cfg.root)
    return cfg


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
        if not isinstance(value, type(getattr(cfg, key))):
            raise UsageError(f"config {path}: {key} must be a {type(getattr(cfg, key)).__name__}")
        setattr(cfg, key, value)
    if cfg.stack not in STACKS:
        raise UsageError(f"config {path}: stack must be {', '.join(STACKS)}, not {cfg.stack!r}")
