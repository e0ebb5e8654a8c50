"""What the engine asks of a host driver, and the description of a pot it hands over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from ladle.errors import UsageError

if TYPE_CHECKING:
    from ladle.plan.runner import Runner
    from ladle.plan.steps import Step
    from ladle.storage.snapshotter import Mount
    from ladle.supervise.client import MonitorClient


OOM = "killed for memory"  # how a run's `error` begins when the kernel's OOM killer ended its command


def yes_no(name: str, value: str) -> str:
    """pot's booleans: yes/no, true/false or on/off in any case, stored as YES or NO."""
    low = value.strip().lower()
    if low in ("yes", "true", "on"):
        return "YES"
    if low in ("no", "false", "off"):
        return "NO"
    raise UsageError(f"attribute {name} takes yes or no (or true/false, on/off), not {value!r}")


class NetAddress(TypedDict):
    """One address of a pot on a bridge, with its network's prefix length and gateway (the
    bridge's own address, the pot's default route)."""

    address: str
    prefixlen: int
    gateway: str


class NetAlias(TypedDict):
    """An `alias` pot's address: added to host interface `interface` while the pot runs."""

    interface: str
    address: str
    prefixlen: int  # 32 or 128: a host route's worth, never the interface's whole subnet


class NetPort(TypedDict):
    """A port export: `host_port` on the host (every address, 127.0.0.1 too) to `pot_port`."""

    proto: str  # tcp | udp
    pot_port: int
    host_port: int


class NetSpec(TypedDict, total=False):
    """How a pot is networked, as the engine hands it to a driver (`RuntimeSpec.net`; JSON values).
    Empty for `inherit` and `none`. For the bridge types every key is present; for `alias` only
    `type`, `aliases`, `hosts` and `resolv`.

    - `network`: the IPAM network ('public' or the private bridge's name); `bridge` the host's
      bridge interface for it (`ldbr0` for the public one, `ldbr<N>` for private ones), `veth`
      the host-side end of the pot's pair (`ldv<hex>`; inside the pot the other end is `eth0`).
    - `ipv4`, `ipv6`: the pot's leases (None for a family its stack leaves out).
    - `nat`: the configured networks (IPv4 network and IPv6 prefix) whose sources are masqueraded
      when they leave for anything outside them (private bridges are carved out of them).
    - `ports`: the pot's exports; `hosts`: the text of its /etc/hosts (None: leave the pot's own,
      attribute no-etc-hosts); `resolv`: the text of its /etc/resolv.conf (None: the host's).
    """

    type: str
    network: str
    bridge: str
    veth: str
    ipv4: NetAddress | None
    ipv6: NetAddress | None
    nat: list[str]
    aliases: list[NetAlias]
    ports: list[NetPort]
    hosts: str | None
    resolv: str | None


@dataclass
class RuntimeSpec:
    """Everything a driver needs to run one pot; built by the engine from the state store.

    `root` mounts the pot's tree at '/' (from the snapshotter); `mounts` are fscomps and mount-ins,
    in order, with targets inside the pot. `cmd` is pot's command line, parsed by /bin/sh like
    pot's tinirc does (`exec <cmd>`). `attrs` hold pot attributes as strings ('YES'/'NO', numbers,
    'new'/'inherit'/'disable'). `network` is the network type: 'inherit' (host stack), 'none' (own
    stack, loopback only), 'alias', 'public-bridge' or 'private-bridge', described by `net`.
    `stack` is the IP versions the pot may use ('ipv4', 'ipv6' or 'dual'; the pot's, else the
    host's `stack` setting).
    """

    name: str
    hostname: str
    root: list[Mount]
    mounts: list[Mount]
    cmd: str
    env: dict[str, str]
    attrs: dict[str, str]
    network: str
    log_path: str
    run_dir: str  # per-pot runtime directory under the state root (mountpoint for the root, ...)
    stack: str = "ipv4"
    extra: dict[str, Any] = field(default_factory=dict)
    net: NetSpec = field(default_factory=lambda: NetSpec())
    # A pot from an image: its exec-form command (no shell parses it), the user it runs as
    # (image-spec's User, resolved in the pot's /etc/passwd), its working directory, the signal
    # that stops it.
    argv: list[str] | None = None
    user: str = ""
    workdir: str = ""
    stop_signal: str = ""

    def read_only_at(self, path: str) -> bool:
        """Whether in-pot `path` lies on a read-only mount: the innermost of the root's and the
        pot's mounts that holds it (of several at one place, the last)."""
        held, depth = False, -1
        for m in [*self.root, *self.mounts]:
            target = "/" + m.target.strip("/")
            if (path == target or path.startswith(target.rstrip("/") + "/")) and len(target) >= depth:
                held, depth = m.readonly, len(target)
        return held

    def attr_on(self, name: str) -> bool:
        return self.attrs.get(name, "NO").upper() in ("YES", "ON", "TRUE", "1")

    @property
    def persistent(self) -> bool:
        return self.attr_on("persistent")

    @property
    def stop_timeout(self) -> float:
        return float(self.attrs.get("stop_timeout", "10"))


@dataclass
class RunRecord:
    """A started pot, as recorded in the `runs` table (pids with start times survive pid reuse)."""

    pot: str
    state: str  # 'running' | 'stopped' | 'exited' | 'failed'
    monitor_pid: int | None = None
    monitor_start: int | None = None
    init_pid: int | None = None
    init_start: int | None = None
    main_pid: int | None = None
    main_start: int | None = None
    exit_code: int | None = None
    error: str | None = None


class Host:
    """A host driver. Every method that changes the host returns steps, or does interactive work
    that has a `*_render` twin for --dry-run."""

    name: ClassVar[str] = ""

    def __init__(self, runner: Runner, root: str, offline: bool = False) -> None:
        self.runner = runner
        self.root = root
        self.offline = offline  # planning a dry run on another host: there is no host to ask

    # Attributes --------------------------------------------------------------------------------

    def attr_defaults(self) -> dict[str, str]:
        """Attributes written at create, with this host's defaults."""
        raise NotImplementedError

    def check_attr(self, name: str, value: str) -> str:
        """Validate and normalise an attribute value; raise UsageError if unknown or unsupported."""
        raise NotImplementedError

    def expand_attr(self, name: str, value: str) -> dict[str, str]:
        """The attributes to store for name=value (a shorthand may stand for several)."""
        return {name: self.check_attr(name, value)}

    # Pots --------------------------------------------------------------------------------------

    def check_layout(self, storage: str, type_: str, level: int) -> None:
        """Refuse at create a pot this host could never start on `storage` ('dir' or 'zfs'),
        rather than at its first start."""

    # Bases -------------------------------------------------------------------------------------

    def canonical_release(self, release: str) -> str:
        """The release as this host spells it (FreeBSD: '14.2' -> '14.2-RELEASE')."""
        return release

    def release_base_steps(self, release: str, dest: str, cache: str, mirror: str) -> list[Step]:
        """Fill the empty tree `dest` with the base system for `release` (FreeBSD: base.txz checked
        against MANIFEST; Linux: 'busybox' from the host's static busybox)."""
        raise NotImplementedError

    # Life cycle ----------------------------------------------------------------------------------

    def monitor_argv(self) -> list[str]:
        """How the keeper starts this host's monitor (`ladle.supervise`) for the state root."""
        raise NotImplementedError

    def on_exit(self, name: str, remove: bool = False) -> list[str]:
        """What the monitor runs when a pot ends by itself: `ladle stop --exited`, which tears it
        down (and leaves a restart its policy decided), or for a pot started to be removed
        (`run --rm -d`) `ladle destroy -F`, which also does."""
        import sys
        verb = ["destroy", "-F", "-p", name] if remove else ["stop", "--exited", name]
        return [sys.executable, "-m", "ladle", "--root", self.root, "--host", self.name, *verb]

    def start_plan(self, spec: RuntimeSpec) -> list[Step]:
        """Steps that start the pot; the last has the monitor start its command and returns once
        that runs, or raises with the reason. The monitor records the run."""
        raise NotImplementedError

    def stop_plan(self, spec: RuntimeSpec, run: RunRecord) -> list[Step]:
        """Steps that stop a running pot (signal, wait up to stop_timeout, kill) and clean up after
        it. They must also work when the monitor or the pot already died (recovery)."""
        raise NotImplementedError

    def exec(self, spec: RuntimeSpec, run: RunRecord, argv: list[str], monitor: MonitorClient, *,
             tty: bool, env: dict[str, str], bound: bool = False) -> int | None:
        """Run argv inside the running pot (through the monitor) on our stdin, stdout and stderr,
        or on a new terminal relayed to ours; return its exit code. A `bound` one is killed when
        our connection to the monitor goes (a healthcheck that timed out)."""
        raise NotImplementedError

    def exec_render(self, spec: RuntimeSpec, argv: list[str], *, tty: bool) -> list[str]:
        raise NotImplementedError

    def alive(self, run: RunRecord) -> bool:
        """Is the pot of this run record still running?"""
        raise NotImplementedError

    def alive_all(self, runs: list[RunRecord]) -> list[bool]:
        """`alive` for many runs at once (a driver may ask the host once for all of them)."""
        return [self.alive(r) for r in runs]

    # Resources -----------------------------------------------------------------------------------

    def limits_plan(self, spec: RuntimeSpec, run: RunRecord, limits: dict[str, Any],
                    previous: dict[str, Any]) -> list[Step]:
        """Steps that set a running pot's limits (`spec.extra["limits"]` at a start) to `limits`
        at once, undone by setting `previous` again."""
        raise NotImplementedError

    def host_cpus(self) -> list[int] | None:
        """The host's CPU numbers (None: not known, a dry run for another host)."""
        return None

    def host_memory(self) -> int | None:
        """The host's memory in bytes (None: not known)."""
        return None

    def oom_kills(self, pot: str) -> int | None:
        """How many of the pot's processes the kernel killed for its memory limit so far (None:
        not known here, its cgroup already gone or the host has no such counter)."""
        return None

    def pinned(self, exclude: str | None = None) -> list[list[int]]:
        """The CPU lists of the pots pinned on this host now (but pot `exclude` of this state
        root), to balance a count (`-C N`) over."""
        return []

    def usage(self, spec: RuntimeSpec, run: RunRecord) -> dict[str, float]:
        """What the running pot uses: memory, swap (bytes), pids, cpu_usec (CPU time so far) and,
        where the host gives a share directly, pcpu (percent of one CPU); oom_kills; mhz (the
        CPU's clock)."""
        raise NotImplementedError

    def processes(self, spec: RuntimeSpec, run: RunRecord) -> list[dict[str, Any]]:
        """The running pot's processes: pid (inside), host_pid, uid, command."""
        raise NotImplementedError

    def passwd(self, spec: RuntimeSpec, run: RunRecord) -> bytes | None:
        """The running pot's own /etc/passwd, read without following a link out of its root
        (None: not there, not a regular file, or not readable so on this host)."""
        return None

    def leftovers(self) -> dict[str, bool]:
        """Pots that the host tracks processes of by name (Linux: a cgroup each), whether or not a
        run records them, and whether processes are left; a jail is its own record (FreeBSD)."""
        return {}

    def leftover_plan(self, name: str) -> list[Step]:
        """Steps that end whatever of the pot the host still tracks though no run owns it (left by
        a crash), and remove the tracking."""
        return []

    def hosts_plan(self, spec: RuntimeSpec, run: RunRecord) -> list[Step]:
        """Steps that write `spec.net["hosts"]` as the running pot's /etc/hosts at once (a pot on
        its bridge came or went), never through a link the pot planted."""
        return []

    def live_mount_plan(self, spec: RuntimeSpec, run: RunRecord, mount: Mount) -> list[Step] | None:
        """Steps that add `mount` to the running pot at once (mount-in, add-fscomp); None when this
        host cannot do it safely, and the mount waits for the pot's next start."""
        raise NotImplementedError

    def live_unmount_plan(self, spec: RuntimeSpec, run: RunRecord, target: str) -> list[Step]:
        """Steps that remove the mount at in-pot path `target` from the running pot (mount-out)."""
        raise NotImplementedError

    def leaked_mounts(self, live: set[str]) -> list[str]:
        """Mount points under the state root that a crash left (none of the pots in `live`)."""
        raise NotImplementedError

    def force_unmount(self, point: str) -> list[Step]:
        """A step that unmounts a leaked mount even if it is busy (a failure is only reported)."""
        raise NotImplementedError

    # Files -------------------------------------------------------------------------------------

    def copy_plan(self, spec: RuntimeSpec, run: RunRecord | None, direction: str, host_path: str,
                  pot_path: str, create_parents: bool, keep_setuid: bool = False) -> list[Step]:
        """Copy into ('in') or out of ('out') the pot, never following a symlink out of its root nor
        writing through a FIFO or device node of the pot; a FIFO, socket or device asked for is
        refused. Copy-out drops setuid and setgid bits unless `keep_setuid`. Works on stopped pots
        (mounting the tree privately) and running ones."""
        raise NotImplementedError
