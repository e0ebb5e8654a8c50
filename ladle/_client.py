"""`ladle.Client`: the library API. The CLI, a REST API and the Nomad driver are its presenters.

Every verb is a method named for it (dashes become underscores), with keyword arguments named for
what they mean. Methods return dataclasses from `ladle._models` and raise `ladle.LadleError`
subclasses; nothing prints. Warnings (an undo that failed, a crashed operation repaired) go to the
`ladle` logger.

One Client may be used by many threads at once: each thread gets its own SQLite connection and
monitor connection, every call builds its own engine, and the locks are flock locks that work from
any thread and never use signals.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ladle import _log, names
from ladle.config import load
from ladle.engine.core import Engine
from ladle.errors import UsageError
from ladle.hosts import this_host

if TYPE_CHECKING:
    from ladle._models import (
        Base,
        Fscomp,
        Image,
        LastRun,
        Network,
        Pot,
        PotInfo,
        PotStats,
        PotSummary,
        Process,
        Resources,
    )
    from ladle._results import Change, RunResult
    from ladle.engine.flavours import Flavour
    from ladle.plan.runner import Runner
    from ladle.state.store import Store
    from ladle.supervise.client import MonitorClient

T = TypeVar("T")


class Client:
    """A ladle installation (a state root) on this host.

    `root` None means $LADLE_ROOT, then the config file's `root`, then the default
    (/var/lib/ladle on Linux, /var/db/ladle on FreeBSD). `host` plans for another host (only with
    `dry_run`, which renders the exact commands of every change without making it).
    """

    def __init__(self, root: str | None = None, *, host: str | None = None, dry_run: bool = False,
                 runner: Runner | None = None) -> None:
        self.config = load(host or this_host(), root)
        self.dry_run = dry_run
        self._runner = runner
        self._local = threading.local()
        self._opened: list[Any] = []
        self._guard = threading.Lock()

    @property
    def root(self) -> str:
        return self.config.root

    # Plumbing ----------------------------------------------------------------------------------

    def _store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            from ladle.state.store import Store
            store = Store(f"{self.root}/ladle.db")
            self._local.store = store
            with self._guard:
                self._opened.append(store)
        return store

    def _monitor(self, eng: Engine) -> MonitorClient:
        monitor: MonitorClient | None = getattr(self._local, "monitor", None)
        if monitor is None:
            from ladle.supervise.client import MonitorClient
            monitor = MonitorClient(self.root, eng.host.monitor_argv())
            self._local.monitor = monitor
            with self._guard:
                self._opened.append(monitor)
        return monitor

    def _engine(self, *, recover: bool) -> Engine:
        eng = Engine(self.config, dry_run=self.dry_run, runner=self._runner, store=self._store,
                     monitor=lambda: self._monitor(eng))
        if recover and not self.dry_run:
            from ladle.engine.gc import recover as repair
            for line in repair(eng):
                _log.info(line)
        return eng

    def _change(self, verb: Callable[[Engine], str], *, recover: bool = True) -> Change:
        from ladle._results import Change

        eng = self._engine(recover=recover)
        message = verb(eng)
        return Change("" if self.dry_run else message, tuple(eng.lines), self.dry_run)

    def _read(self, query: Callable[[Engine], T]) -> T:
        return query(self._engine(recover=False))

    def close(self) -> None:
        """Close this client's database and monitor connections (of every thread)."""
        with self._guard:
            opened, self._opened = self._opened, []
        for thing in opened:
            thing.close()
        self._local = threading.local()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Set-up and bases --------------------------------------------------------------------------

    def init(self, storage: str = "dir", dataset: str | None = None, force: bool = False) -> Change:
        """Create the state root, its database and storage (idempotent); `force` takes over a
        ZFS dataset that another state root owns."""
        from ladle.engine.setup import init
        if dataset is not None:
            names.host_path("--dataset", dataset)
        return self._change(lambda e: init(e, storage, dataset, force), recover=False)

    def create_base(self, release: str, name: str | None = None, from_tar: str | None = None) -> Change:
        """A base: a FreeBSD release (base.txz, checked against MANIFEST), 'busybox' on Linux, or
        any root file system tarball with `from_tar`."""
        from ladle.engine.bases import create_base
        names.label("release", release)
        names.check("base", name)
        if from_tar is not None:
            names.host_path("tarball", from_tar)
        return self._change(lambda e: create_base(e, release, name, from_tar))

    def bases(self) -> list[Base]:
        from ladle.engine.bases import list_bases
        return self._read(list_bases)

    def destroy_base(self, name: str, recursive: bool = False, force: bool = False) -> Change:
        from ladle.engine.bases import destroy_base
        names.check("base", name)
        return self._change(lambda e: destroy_base(e, name, recursive, force))

    # Pots --------------------------------------------------------------------------------------

    def create(self, name: str, base: str | None = None, *, type: str = "multi", level: int | None = None,
               potbase: str | None = None, cmd: str | None = None, network: str = "none",
               persistent: bool | None = None, attrs: dict[str, str] | None = None,
               addresses: list[str] | None = None, bridge: str | None = None, stack: str | None = None,
               dns: list[str] | None = None, image: str | None = None, insecure: bool = False,
               flavours: list[str] | None = None) -> Change:
        """A pot, with pot's types and levels (see the README). `network` is inherit, none, alias,
        public-bridge or private-bridge (on `bridge`); `addresses` are pot's `-i` (auto or an IP
        per IP version on a bridge, `[IF|]IP` for alias), `stack` ipv4, ipv6 or dual, `dns` the
        servers of its /etc/resolv.conf (default: the host's).

        With `image` (a REF, pulled if it is not in the store) the pot's tree is a layer on the
        image's and its command the image's; `cmd` then replaces the image's Cmd (one word per
        argument, split as a shell would), and no base, type, level or -P may be given.
        `flavours` are applied in order, each's commands then its script (pot's `-f`); one that
        fails destroys the pot again."""
        from ladle.engine.flavours import find
        from ladle.engine.pots import create
        names.check("pot", name, potbase)
        names.check("base", base)
        if cmd is not None:
            names.text("the command", cmd)
        req = _net(network, addresses, bridge, stack, dns)
        all_attrs = dict(attrs or {})
        if persistent is not None:
            all_attrs["persistent"] = "YES" if persistent else "NO"
        found = [find(self.config, f) for f in flavours or []]
        if image is not None:
            from ladle.engine import imagepots
            names.text("the image", image)
            if base or potbase or level is not None or type != "multi":
                raise UsageError("--image takes the place of -b, -t, -l and -P")
            args = _split(cmd) if cmd else []
            made = self._change(lambda e: imagepots.create(e, name, image, args, None, req, all_attrs, None,
                                                           pull=True, insecure=insecure))
        else:
            made = self._change(lambda e: create(e, name, base, type, level, potbase, cmd, req, all_attrs))
        if not found:
            return made
        if self.dry_run:
            then = [f"ladle {c.text} -p {name}" for fl in found for c in fl.calls]
            then += [f"ladle exec {name} -- {fl.script} {name}" for fl in found if fl.script]
            return replace(made, commands=made.commands + tuple(then))
        _apply_flavours(self, name, found)
        return replace(made, message=made.message + f" with flavour{'s' * (len(found) > 1)} "
                       + ", ".join(fl.name for fl in found))

    def destroy(self, name: str, recursive: bool = False, force: bool = False) -> Change:
        """Destroy a pot; `recursive` also its dependants, `force` stops running ones first."""
        from ladle.engine.pots import destroy
        names.check("pot", name)
        return self._change(lambda e: destroy(e, name, recursive, force))

    def pots(self) -> list[Pot]:
        from ladle.engine.show import list_pots
        return self._read(list_pots)

    def info(self, name: str) -> PotInfo:
        from ladle.engine.show import info
        names.check("pot", name)
        return self._read(lambda e: info(e, name))

    def clone(self, new: str, source: str, snapshot: str | None = None, addresses: list[str] | None = None) -> Change:
        """Pot `new` from a snapshot of `source`, on its network with addresses of its own (new
        leases, or `addresses` as create's; an alias pot's must be given)."""
        from ladle.engine.pots import clone
        names.check("pot", new, source)
        names.check("snapshot", snapshot)
        _labels("-i", addresses)
        return self._change(lambda e: clone(e, new, source, snapshot, addresses))

    def rename(self, old: str, new: str) -> Change:
        from ladle.engine.pots import rename
        names.check("pot", old, new)
        return self._change(lambda e: rename(e, old, new))

    def set_cmd(self, name: str, cmd: str) -> Change:
        from ladle.engine.pots import set_cmd
        names.check("pot", name)
        names.text("the command", cmd)
        return self._change(lambda e: set_cmd(e, name, cmd))

    def set_env(self, name: str, env: dict[str, str]) -> Change:
        """Replace the pot's environment."""
        from ladle.engine.pots import set_env
        names.check("pot", name)
        for key, value in env.items():
            names.env_pair(f"{key}={value}")
        return self._change(lambda e: set_env(e, name, env))

    def set_attr(self, name: str, attr: str, value: str) -> Change:
        from ladle.engine.pots import set_attr
        names.check("pot", name)
        names.text("the attribute name", attr)
        names.text(f"the value of {attr}", value, empty=True)
        return self._change(lambda e: set_attr(e, name, attr, value))

    def get_attr(self, name: str, attr: str) -> str:
        from ladle.engine.pots import get_attr
        names.check("pot", name)
        names.text("the attribute name", attr)
        return self._read(lambda e: get_attr(e, name, attr))

    def set_network(self, name: str, network: str, *, addresses: list[str] | None = None,
                    bridge: str | None = None, stack: str | None = None) -> Change:
        """Change a stopped pot's network (as create's options): old leases released, new taken."""
        from ladle.engine.netverbs import set_network
        names.check("pot", name)
        req = _net(network, addresses, bridge, stack, None)
        return self._change(lambda e: set_network(e, name, req))

    def export_ports(self, name: str, ports: list[str]) -> Change:
        """Replace the pot's port exports: `PORT[:HOSTPORT][/tcp|/udp]`, PORT the pot's (without
        HOSTPORT, the lowest free one of 1024-9999). Active while the pot runs."""
        from ladle.engine.netverbs import export_ports
        names.check("pot", name)
        _labels("-e", ports)
        return self._change(lambda e: export_ports(e, name, ports))

    def set_hosts(self, name: str, entries: list[str]) -> Change:
        """Replace the pot's own /etc/hosts entries (`NAME:IP`)."""
        from ladle.engine.netverbs import set_hosts
        names.check("pot", name)
        for entry in entries:
            names.text("-H", entry)
        return self._change(lambda e: set_hosts(e, name, entries))

    # File-system components, mounts and copies -------------------------------------------------

    def create_fscomp(self, name: str) -> Change:
        from ladle.engine.fscomps import create_fscomp
        names.check("fscomp", name)
        return self._change(lambda e: create_fscomp(e, name))

    def fscomps(self) -> list[Fscomp]:
        from ladle.engine.fscomps import list_fscomps
        return self._read(list_fscomps)

    def clone_fscomp(self, source: str, new: str, snapshot: str | None = None) -> Change:
        from ladle.engine.fscomps import clone_fscomp
        names.check("fscomp", source, new)
        names.check("snapshot", snapshot)
        return self._change(lambda e: clone_fscomp(e, source, new, snapshot))

    def destroy_fscomp(self, name: str) -> Change:
        from ladle.engine.fscomps import destroy_fscomp
        names.check("fscomp", name)
        return self._change(lambda e: destroy_fscomp(e, name))

    def add_fscomp(self, pot: str, fscomp: str, mountpoint: str, readonly: bool = False) -> Change:
        from ladle.engine.fscomps import add_mount
        names.check("pot", pot)
        names.check("fscomp", fscomp)
        return self._change(lambda e: add_mount(e, pot, "fscomp", fscomp, mountpoint, readonly))

    def mount_in(self, pot: str, hostdir: str, mountpoint: str, readonly: bool = False) -> Change:
        from ladle.engine.fscomps import add_mount
        names.check("pot", pot)
        names.host_path("host directory", hostdir)
        return self._change(lambda e: add_mount(e, pot, "dir", hostdir, mountpoint, readonly))

    def mount_out(self, pot: str, mountpoint: str) -> Change:
        from ladle.engine.fscomps import remove_mount
        names.check("pot", pot)
        return self._change(lambda e: remove_mount(e, pot, mountpoint))

    def copy_in(self, pot: str, source: str, dest: str, create_parents: bool = False) -> Change:
        """Copy host file or tree `source` to `dest` in the pot, never following a link out of it."""
        from ladle.engine.fscomps import copy
        names.check("pot", pot)
        names.host_path("source", source)
        return self._change(lambda e: copy(e, pot, "in", source, dest, create_parents))

    def copy_out(self, pot: str, source: str, dest: str, keep_setuid: bool = False) -> Change:
        """Copy `source` in the pot into the existing host directory `dest`; setuid and setgid
        bits are dropped unless `keep_setuid`."""
        from ladle.engine.fscomps import copy
        names.check("pot", pot)
        names.host_path("destination", dest)
        return self._change(lambda e: copy(e, pot, "out", dest, source, False, keep_setuid))

    # Networks ----------------------------------------------------------------------------------

    def networks(self) -> list[Network]:
        """The public bridge's network and the private bridges, with their leases."""
        from ladle.engine.networks import list_networks
        return self._read(list_networks)

    def network(self, name: str) -> Network:
        from ladle.engine.networks import show
        names.check("network", name)
        return self._read(lambda e: show(e, name))

    def create_private_bridge(self, name: str, size: int | None = None, network: str | None = None) -> Change:
        """A private bridge for `size` pots (its IPv4 block rounded up to a power of two, see the
        README), or with the IPv4 `network` given, carved out of the configured network."""
        from ladle.engine.networks import create_bridge
        names.check("bridge", name)
        if size is not None:
            names.count("-S", size, MAX_BRIDGE)
        if network is not None:
            names.label("-n", network)
        return self._change(lambda e: create_bridge(e, name, size, network))

    def destroy_private_bridge(self, name: str) -> Change:
        """Forget a private bridge; refused while a pot has an address on it."""
        from ladle.engine.networks import destroy_bridge
        names.check("bridge", name)
        return self._change(lambda e: destroy_bridge(e, name))

    # Snapshots ---------------------------------------------------------------------------------

    def snapshot(self, pot: str | None = None, fscomp: str | None = None, name: str | None = None) -> Change:
        from ladle.engine.snapshots import snapshot
        _target(pot, fscomp)
        names.check("snapshot", name)
        return self._change(lambda e: snapshot(e, pot, fscomp, name))

    def rollback(self, pot: str | None = None, fscomp: str | None = None, snapshot: str | None = None,
                 force: bool = False) -> Change:
        """Roll back a pot (a level 0 pot: its base) or an fscomp; refused while a running pot
        uses it, unless `force`, which stops those pots and starts them again."""
        from ladle.engine.snapshots import rollback
        _target(pot, fscomp)
        names.check("snapshot", snapshot)
        return self._change(lambda e: rollback(e, pot, fscomp, snapshot, force))

    def snapshots(self, pot: str | None = None, fscomp: str | None = None) -> list[str]:
        from ladle.engine.snapshots import list_snapshots
        _target(pot, fscomp)
        return self._read(lambda e: list_snapshots(e, pot, fscomp))

    def promote(self, pot: str | None = None, fscomp: str | None = None) -> Change:
        from ladle.engine.snapshots import promote
        _target(pot, fscomp)
        return self._change(lambda e: promote(e, pot, fscomp))

    def purge_snapshots(self, pot: str | None = None, fscomp: str | None = None, keep: int = 1,
                        everything: bool = False) -> Change:
        from ladle.engine.snapshots import purge
        _target(pot, fscomp)
        names.count("-k", keep, MAX_KEEP)
        return self._change(lambda e: purge(e, pot, fscomp, keep, everything))

    # Life cycle --------------------------------------------------------------------------------

    def start(self, name: str) -> Change:
        """Start a pot; returns once its command runs, or raises with the reason."""
        from ladle.engine.lifecycle import start
        names.check("pot", name)
        return self._change(lambda e: start(e, name))

    def start_attached(self, name: str, *, stdio: tuple[int, int, int] | None = None) -> RunResult:
        """pot's start of a non-persistent pot: run its command in the foreground (on `stdio`, or
        captured in the result), pass this process's signals on to it, stop the pot when it exits."""
        from ladle.engine.run import start_attached
        names.check("pot", name)
        return start_attached(self._engine(recover=True), name, stdio)

    def stop(self, name: str, *, exited: bool = False) -> Change:
        """Stop a pot (final: a pending restart of its policy is cancelled); `exited` is the
        monitor's teardown of a pot that ended by itself, which leaves that restart."""
        from ladle.engine.run import stop
        names.check("pot", name)
        return self._change(lambda e: stop(e, name, exited))

    def restart(self, name: str, *, due: bool = False) -> Change:
        """Stop a pot if it runs, and start it again (its restart count starts over); `due` is
        the monitor's restart by the pot's policy (nothing if a stop came first)."""
        from ladle.engine.lifecycle import restart
        names.check("pot", name)
        return self._change(lambda e: restart(e, name, due))

    def set_health(self, name: str, cmd: str | None, *, interval: str = "30s", timeout: str = "5s",
                   retries: str = "3", start_period: str = "0s", remove: bool = False) -> Change:
        """The pot's healthcheck: `cmd` run in it (by /bin/sh) every `interval`; applied at its next start."""
        from ladle.engine.health import set_health
        names.check("pot", name)
        if cmd is not None:
            names.text("the healthcheck command", cmd, empty=True)
        return self._change(lambda e: set_health(e, name, cmd, interval, timeout, retries, start_period, remove))

    def healthcheck(self, name: str) -> Change:
        """Run the pot's healthcheck once; raises StateError if it fails."""
        from ladle.engine.health import healthcheck
        names.check("pot", name)
        return self._change(lambda e: healthcheck(e, name), recover=False)

    def add_dep(self, name: str, dep: str) -> Change:
        """pot's add-dep: starting `name` starts `dep` first."""
        from ladle.engine.deps import add
        names.check("pot", name)
        return self._change(lambda e: add(e, name, dep))

    def del_dep(self, name: str, dep: str) -> Change:
        from ladle.engine.deps import delete
        names.check("pot", name)
        return self._change(lambda e: delete(e, name, dep))

    def set_hook(self, name: str, *, prestart: str | None = None, poststart: str | None = None,
                 prestop: str | None = None, poststop: str | None = None) -> Change:
        """pot's set-hook: host scripts run around the pot's start and stop ('' removes one)."""
        from ladle.engine.hooks import set_hooks
        names.check("pot", name)
        paths = {"prestart": prestart, "poststart": poststart, "prestop": prestop, "poststop": poststop}
        return self._change(lambda e: set_hooks(e, name, paths))

    def boot(self, *, stop: bool = False) -> Change:
        """Start the pots marked for boot (start-at-boot, restart always / unless-stopped) in
        dependency order; with `stop`, stop them in reverse."""
        from ladle.engine.boot import boot
        return self._change(lambda e: boot(e, stop))

    def signal(self, name: str, signal: str = "TERM") -> Change:
        """pot's `signal`: send `signal` (a name or number) to the pot's command."""
        from ladle.engine.lifecycle import signal_
        names.check("pot", name)
        return self._change(lambda e: signal_(e, name, signal))

    def wait(self, name: str) -> int | None:
        """Block until the pot's command exits; its exit code (None if it never ran or was lost)."""
        from ladle.engine.lifecycle import wait
        names.check("pot", name)
        return self._read(lambda e: wait(e, name))

    def exec(self, name: str, argv: list[str], *, tty: bool = False, env: dict[str, str] | None = None) -> int:
        """Run `argv` in the running pot on this process's stdin, stdout and stderr (with `tty`, a
        new terminal relayed to ours); return its exit code."""
        from ladle.engine.lifecycle import exec_
        names.check("pot", name)
        _argv(argv)
        for key, value in (env or {}).items():
            names.env_pair(f"{key}={value}")
        return self._read(lambda e: exec_(e, name, argv, tty, env))

    def exec_plan(self, name: str, argv: list[str], *, tty: bool = False) -> list[str]:
        """The command `exec` runs, for --dry-run."""
        from ladle.engine.lifecycle import exec_plan
        names.check("pot", name)
        _argv(argv)
        return self._read(lambda e: exec_plan(e, name, argv, tty))

    def logs(self, name: str, *, follow: bool = False) -> Iterator[bytes]:
        """The pot's output; with `follow`, also what it writes until it stops."""
        from ladle.engine.lifecycle import logs
        names.check("pot", name)
        return logs(self._engine(recover=False), name, follow)

    # Resources ---------------------------------------------------------------------------------

    def set_rss(self, name: str, *, cpus: str | None = None, memory: str | None = None, pids: str | None = None,
                pcpu: str | None = None) -> Change:
        """pot's set-rss: CPUs (a count, balanced at each start, or a list such as '0,2'), memory
        ('512M'), the most processes (0: none; default the configuration's pids_limit) and a CPU
        share (percent of one CPU); 'none' lifts one. Applied at once to a running pot."""
        from ladle.engine.resources import set_rss
        names.check("pot", name)
        for what, value in (("-C", cpus), ("-M", memory), ("--pids", pids), ("--pcpu", pcpu)):
            if value is not None:
                names.text(f"the value of {what}", value)
        return self._change(lambda e: set_rss(e, name, cpus, memory, pids, pcpu))

    def get_rss(self, name: str) -> Resources:
        """pot's get-rss: a running pot's limits and what it uses now."""
        from ladle.engine.resources import get_rss
        names.check("pot", name)
        return self._read(lambda e: get_rss(e, name))

    def stats(self, pots: list[str] | None = None, interval: float = 0.5) -> list[PotStats]:
        """CPU %, memory and pids of running pots (all of them, or those named), over `interval`."""
        from ladle.engine.resources import stats
        for name in pots or []:
            names.check("pot", name)
        return self._read(lambda e: stats(e, list(pots or []), interval))

    def show(self, name: str | None = None) -> list[PotSummary]:
        """pot's show: limits, usage, addresses and exports of the running pots (or of `name`)."""
        from ladle.engine.resources import show
        if name is not None:
            names.check("pot", name)
        return self._read(lambda e: show(e, name))

    def ps(self, name: str) -> list[Process]:
        """The running pot's processes."""
        from ladle.engine.resources import ps
        names.check("pot", name)
        return self._read(lambda e: ps(e, name))

    def last_run_stats(self, name: str) -> LastRun:
        """How the pot's command last ended (pot's `last-run-stats`)."""
        from ladle.engine.lifecycle import last_run
        names.check("pot", name)
        return self._read(lambda e: last_run(e, name))

    def run(self, base: str, argv: list[str], *, name: str | None = None, rm: bool = False,
            network: str = "none", stdio: tuple[int, int, int] | None = None, addresses: list[str] | None = None,
            bridge: str | None = None, stack: str | None = None, dns: list[str] | None = None,
            ports: list[str] | None = None, entrypoint: str | None = None, insecure: bool = False,
            publish_all: bool = False) -> RunResult:
        """Create a non-persistent pot on `base`, run `argv` in it and wait for its exit code.

        A `base` that is no local base is an image REF (pulled when missing): `argv` replaces its
        Cmd and `entrypoint` its Entrypoint, as Docker's run.

        With `stdio` (three descriptors) the command uses them; without, its output is captured
        in the result. `rm` destroys the pot afterwards, as Docker's --rm. The network options
        are create's; `ports` export-ports'; `publish_all` exports an image's ExposedPorts on free
        host ports too, as Docker's -P.
        """
        from ladle.engine.run import run
        names.text("the base or image", base)
        names.check("pot", name)
        _argv(argv)
        _entrypoint(entrypoint)
        req = _net(network, addresses, bridge, stack, dns)
        _labels("-e", ports)
        return run(self._engine(recover=True), base, argv, name, rm, req, stdio, ports, entrypoint, insecure,
                   publish_all)

    def run_detached(self, base: str, argv: list[str], *, name: str | None = None,
                     network: str = "none", rm: bool = False, addresses: list[str] | None = None,
                     bridge: str | None = None, stack: str | None = None, dns: list[str] | None = None,
                     ports: list[str] | None = None, entrypoint: str | None = None, insecure: bool = False,
                     publish_all: bool = False) -> Change:
        """`run -d`: start the pot and return at once; it is torn down when its command exits
        (and destroyed with `rm`)."""
        from ladle.engine.run import run_detached
        names.text("the base or image", base)
        names.check("pot", name)
        _argv(argv)
        _entrypoint(entrypoint)
        req = _net(network, addresses, bridge, stack, dns)
        _labels("-e", ports)
        return self._change(lambda e: run_detached(e, base, argv, name, req, rm, ports, entrypoint, insecure,
                                                   publish_all))

    def gc(self, force: bool = False) -> Change:
        """Finish or roll back interrupted operations; clean up after crashed pots and leaks. The
        message has one line per repair (empty when there was nothing to do), and one per
        operation whose repair failed; `force` drops those."""
        from ladle.engine.gc import gc
        return self._change(lambda eng: "\n".join(gc(eng, force)), recover=False)

    # Images ------------------------------------------------------------------------------------

    def pull(self, ref: str, *, insecure: bool = False,
             progress: Callable[[str, int, int], None] | None = None) -> Change:
        """Pull an image (by tag or digest; from an index, this host's platform) into the content
        store. `progress(blob, done, total)` hears of each blob as it comes."""
        from ladle.engine.images import pull
        return self._change(lambda e: pull(e, ref, insecure, progress), recover=False)

    def push(self, source: str, dest: str | None = None, *, insecure: bool = False, chunk_size: int = 16 << 20,
             progress: Callable[[str, int, int], None] | None = None) -> Change:
        """Push an image of the store to its own name or to `dest`; blobs larger than `chunk_size`
        go up in chunks of that size (0: each in one request)."""
        from ladle.engine.images import push
        from ladle.images.registry import check_chunk
        check_chunk(chunk_size)
        return self._change(lambda e: push(e, source, dest, insecure, chunk_size, progress), recover=False)

    def login(self, registry: str, user: str, password: str, *, insecure: bool = False) -> Change:
        """Check credentials against a registry and keep them in the Docker/Podman auth file."""
        from ladle._results import Change
        from ladle.engine.images import login
        from ladle.images.auth import check_user
        from ladle.images.refs import registry_host
        host = registry_host(registry)
        check_user(user)
        names.text("a password", password)
        return Change(login(host, user, password, insecure))

    def images(self) -> list[Image]:
        from ladle.engine.images import images
        return self._read(images)

    def rmi(self, ref: str, *, force: bool = False) -> Change:
        """Remove an image's name (NAME:TAG, NAME@DIGEST or DIGEST) and the blobs only it used;
        an image pots were made from (and that no other name keeps) only with `force`."""
        from ladle.engine.images import rmi
        return self._change(lambda e: rmi(e, ref, force), recover=False)

    def commit(self, pot: str, ref: str) -> Change:
        """Store a stopped pot's changes as a new layer on its image (or its base's tree) under
        image `ref`, which `push` can then send to a registry."""
        from ladle.engine.changes import commit
        names.check("pot", pot)
        names.text("the image reference", ref)
        return self._change(lambda e: commit(e, pot, ref))

    def build(self, file: str, tag: str, context: str = ".", *, build_args: dict[str, str] | None = None,
              network: str = "none", no_cache: bool = False, insecure: bool = False,
              stdio: tuple[int, int, int] | None = None, say: Callable[[str], None] | None = None) -> Change:
        """Build image `tag` from the Containerfile `file` with the files of `context`: one layer
        per RUN, COPY and ADD, each step cached. `say` hears each step's line (and CACHED); RUN's
        output goes to `stdio` (captured and dropped without)."""
        from ladle.engine.build import build
        names.host_path("-f", file)
        names.host_path("the build context", context)
        names.text("-t", tag)
        args = dict(build_args or {})
        for k, v in args.items():
            names.text("--build-arg", f"{k}={v}")
        return self._change(lambda e: build(e, file, tag, context, args, network, no_cache, insecure, stdio,
                                            say or (lambda _: None)))

    def tag(self, source: str, dest: str) -> Change:
        """Give the image `source` names (NAME:TAG, NAME@DIGEST, DIGEST) the name `dest` too."""
        from ladle.engine.images import tag
        return self._change(lambda e: tag(e, source, dest), recover=False)

    def save(self, ref: str, path: str) -> Change:
        """Write an image of the store to `path` as an OCI layout archive (skopeo's oci-archive:)."""
        from ladle.engine.images import save
        names.host_path("-o", path)
        return self._change(lambda e: save(e, ref, path), recover=False)

    def load(self, path: str) -> Change:
        """Load the images of an OCI layout archive, each blob checked as it streams in."""
        from ladle.engine.images import load
        names.host_path("-i", path)
        return self._change(lambda e: load(e, path), recover=False)

    def image_prune(self, *, build_cache: bool = False) -> Change:
        """Remove the blobs no image references, and what interrupted pulls left; with
        `build_cache`, forget the build cache first (kept while a build runs)."""
        from ladle.engine.images import prune
        return self._change(lambda e: prune(e, build_cache), recover=False)


MAX_KEEP = 1_000_000  # snapshots to keep: more than any layer has
MAX_BRIDGE = 1 << 24  # pots on a private bridge: a /8's worth, more than any IPv4 network ladle carves from


def _apply_flavours(client: Client, name: str, found: list[Flavour]) -> None:
    """Each flavour's commands, then its script; the first failure destroys the new pot (as
    pot's create does) and is raised, naming the flavour."""
    from ladle.errors import LadleError
    where = ""
    try:
        for fl in found:
            for call in fl.calls:
                where = f"{call.where} ({call.text})"
                args = dict(call.args)
                if call.method == "set_env":  # each line adds to what the pot has
                    args["env"] = {**client.info(name).env, **args["env"]}
                getattr(client, call.method)(name, **args)
            if fl.script:
                where = f"flavour {fl.name} script"
                _run_script(client, name, fl.script)
    except LadleError as e:
        try:
            client.destroy(name, force=True)
            undone = f"pot {name} destroyed"
        except LadleError as again:
            undone = f"pot {name} left behind: {again}"
        message = f"{where} ({undone}): {e}"  # the error last: a start's ends with its log
        try:
            failure = type(e)(message)
        except TypeError:  # one with arguments of its own (CommandFailed): its kind is enough
            from ladle.errors import HostError
            failure = HostError(message)
        raise failure from None


def _run_script(client: Client, name: str, script: str) -> None:
    """pot's flavour script: copied into the pot's /tmp, run there with the pot's name as $1,
    the pot started for it (persistent for the while) and stopped after."""
    from ladle.errors import HostError
    inside = f"/tmp/{os.path.basename(script)}"
    client.copy_in(name, script, inside, create_parents=True)
    was = client.get_attr(name, "persistent")
    if was != "YES":
        client.set_attr(name, "persistent", "YES")
    client.start(name)
    try:
        code = client.exec(name, ["/bin/sh", "-c", 'chmod 0755 "$0" && exec "$0" "$1"', inside, name])
    finally:
        client.stop(name)
        if was != "YES":
            client.set_attr(name, "persistent", was)
    if code != 0:
        raise HostError(f"{os.path.basename(script)} exited {code}")


def _target(pot: str | None, fscomp: str | None) -> None:
    """The `-p POT` or `-f FSCOMP` of the snapshot verbs: names, if given."""
    names.check("pot", pot)
    names.check("fscomp", fscomp)


def _labels(kind: str, values: list[str] | None) -> None:
    for value in values or []:
        names.label(kind, value)


def _net(network: str, addresses: list[str] | None, bridge: str | None, stack: str | None,
         dns: list[str] | None) -> Any:
    """The engine's network request (a `potnet.Request`), its strings checked as labels."""
    from ladle.engine.potnet import Request
    names.label("the network type", network)
    names.check("bridge", bridge)
    _labels("-i", addresses)
    _labels("the DNS server", dns)
    if stack is not None:
        names.label("-S", stack)
    return Request(network, list(addresses or []), bridge, stack, None if dns is None else list(dns))


def _entrypoint(entrypoint: str | None) -> None:
    if entrypoint is not None:
        names.text("--entrypoint", entrypoint)


def _split(cmd: str) -> list[str]:
    import shlex
    try:
        return shlex.split(cmd)
    except ValueError as e:
        raise UsageError(f"the command {names.shown(cmd)} cannot be split into words: {e}") from None


def _argv(argv: list[str]) -> None:
    """A command to run: each argument one that execve(2) can pass."""
    for arg in argv:
        names.text("a command argument", arg, empty=True)
