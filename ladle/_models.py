"""What the library's queries return: plain, frozen dataclasses (`dataclasses.asdict` gives the
JSON the CLI prints with --json). What its actions return is in `_results`, so a command that
changes something does not pay for building these classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pot:
    """One line of `ladle ls`."""

    name: str
    status: str  # running, stopped, exited (N), failed, crashed
    base: str
    type: str
    level: int
    network: str
    addresses: list[str] = field(default_factory=list)  # its leases (an alias pot: its aliases)
    ports: list[str] = field(default_factory=list)  # its exports, HOSTPORT->PORT/PROTO
    health: str | None = None  # starting, healthy, unhealthy (a running pot with a healthcheck)


@dataclass(frozen=True)
class Export:
    """A port export: the host's `host_port` to the pot's `pot_port`."""

    proto: str
    pot_port: int
    host_port: int

    @property
    def text(self) -> str:
        """As `ls` and `info` show it: HOSTPORT->PORT/PROTO."""
        return f"{self.host_port}->{self.pot_port}/{self.proto}"


@dataclass(frozen=True)
class MountPoint:
    mountpoint: str
    kind: str  # fscomp or dir
    source: str
    ro: bool


@dataclass(frozen=True)
class Storage:
    backend: str
    layer: str
    path: str
    parent: str | None
    origin: str | None


@dataclass(frozen=True)
class Run:
    """The last (or current) run of a pot, as its monitor recorded it."""

    state: str
    monitor_pid: int | None
    init_pid: int | None
    main_pid: int | None
    started: float | None
    finished: float | None
    exit_code: int | None
    error: str | None


@dataclass(frozen=True)
class PotInfo:
    """`ladle info`: everything about one pot."""

    name: str
    type: str
    level: int
    base: str
    potbase: str | None
    cmd: str
    network: str
    status: str
    persistent: bool
    env: dict[str, str]
    attrs: dict[str, str]
    mounts: list[MountPoint]
    storage: Storage
    snapshots: list[str]
    run: Run | None
    log: str
    stack: str = "ipv4"
    network_name: str | None = None  # the IPAM network of a bridge type: public or the private bridge
    bridge: str | None = None  # its host interface
    addresses: list[str] = field(default_factory=list)  # the pot's leases (an alias pot: its aliases)
    aliases: list[str] = field(default_factory=list)  # an alias pot's, as IF|IP
    ports: list[Export] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # its own /etc/hosts entries (set-hosts), NAME:IP
    dns: list[str] = field(default_factory=list)  # its /etc/resolv.conf's servers (none: the host's)
    health: str | None = None  # starting, healthy, unhealthy (a running pot with a healthcheck)
    healthcheck: dict[str, object] | None = None  # cmd, interval, timeout, retries, start_period (s)
    restart: str = "no"  # its restart policy
    restarts: int = 0  # restarts by that policy since it was last started by hand
    depends: list[str] = field(default_factory=list)  # pots started before it (add-dep)
    hooks: dict[str, str] = field(default_factory=dict)  # prestart, poststart, prestop, poststop -> script
    image: dict[str, Any] = field(default_factory=dict)  # a pot from an image: ref, manifest, argv, user, ...


@dataclass(frozen=True)
class Base:
    name: str
    release: str
    pots: int
    source: str
    created: float


@dataclass(frozen=True)
class Fscomp:
    name: str
    path: str
    pots: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LastRun:
    """pot's `last-run-stats`: how the pot's command last ended, for orchestrators."""

    exit_code: int | None
    state: str
    started: float | None
    finished: float | None

    def pot_json(self) -> dict[str, int]:
        """pot's own format (`{"ExitCode": N}`, or `{}` when there is none)."""
        return {} if self.exit_code is None else {"ExitCode": self.exit_code}


@dataclass(frozen=True)
class Lease:
    address: str
    pot: str


@dataclass(frozen=True)
class Network:
    """`ladle network ls` (leases counted) and `network show` (leases listed)."""

    name: str
    kind: str  # public-bridge or private-bridge
    ipv4: str | None
    gateway4: str | None
    ipv6: str | None
    gateway6: str | None
    leases: list[Lease] = field(default_factory=list)


@dataclass(frozen=True)
class Image:
    """One line of `ladle images`: a name and tag ('' when pulled by digest), the digest it
    resolved to (an index or a manifest), this host's manifest, and the compressed size of its
    manifest, config and layers."""

    name: str
    tag: str
    digest: str
    manifest: str
    size: int
    created: str | None


@dataclass(frozen=True)
class Resources:
    """`ladle get-rss`: a running pot's limits (None: none) and what it uses now."""

    name: str
    memory_limit: int | None  # bytes, swap included
    pids_limit: int | None
    pcpu_limit: int | None  # percent of one CPU
    cpus: str | None  # set-rss -C as given: a count, or a list
    memory: int  # bytes in use (less inactive page cache on Linux; rctl's memoryuse on FreeBSD)
    swap: int
    pids: int
    cpu_percent: float  # of one CPU
    cpu_seconds: float  # CPU time since it started (0 where the host does not say)
    clock_mhz: float  # the host CPU's clock, for pot's TotalTicks
    oom_kills: int = 0

    def pot_json(self) -> dict[str, object]:
        """pot's `get-rss -J` (what nomad-pot-driver reads: Percent as an integer), with ladle's
        own fields beside it."""
        return {"ResourceUsage": {"MemoryStats": {"RSS": self.memory, "Swap": self.swap},
                                  "CpuStats": {"TotalTicks": round(self.clock_mhz * self.cpu_percent / 100, 2),
                                               "Percent": round(self.cpu_percent)}},
                "Limits": {"Memory": self.memory_limit, "Pids": self.pids_limit, "Pcpu": self.pcpu_limit,
                           "Cpus": self.cpus},
                "Pids": self.pids, "CpuSeconds": round(self.cpu_seconds, 3), "OomKills": self.oom_kills}


@dataclass(frozen=True)
class PotStats:
    """One line of `ladle stats`."""

    name: str
    cpu_percent: float
    memory: int
    memory_limit: int | None
    pids: int
    pids_limit: int | None


@dataclass(frozen=True)
class PotSummary:
    """One block of `ladle show` (pot's show): a running pot's limits and usage, addresses and
    exports."""

    name: str
    resources: Resources
    addresses: list[str] = field(default_factory=list)
    ports: list[Export] = field(default_factory=list)


@dataclass(frozen=True)
class Process:
    """One line of `ladle ps`: a process of a running pot."""

    pid: int  # inside the pot
    host_pid: int
    uid: int
    command: str
    user: str = ""  # the uid's name in the pot's own /etc/passwd, or the uid
