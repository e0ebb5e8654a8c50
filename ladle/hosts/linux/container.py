"""Processes inside a pot's namespaces: launching its pid 1 and main process, and entering it.

`launch` runs in the supervisor. It unshares a pid namespace for its next child only, forks the
pot's pid 1 (then puts its own pid_for_children back, so it can still fork normally), and reads a
report pipe: pid 1 writes `P <pid>` once it has forked the main process, and whoever fails writes
`E <reason>`. The pipe is close-on-exec, so EOF means the main process has really exec'd.

pid 1 unshares the mount, uts, ipc and net namespaces, builds the tree (`mounts`), sets the
hostname, brings `lo` up, pivots, drops capabilities (`caps`), forks the main process and becomes
the mini-init (`ladle.supervise.init`). The main process gets its own process group (so a
terminal's Ctrl-C reaches it once, not also through pid 1), default signal dispositions, the pot's
environment and the command.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import re
import shlex
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from ladle import proc
from ladle.errors import HostError, UsageError
from ladle.hosts.linux import caps, mounts
from ladle.hosts.linux import syscalls as sc
from ladle.supervise import init

if TYPE_CHECKING:
    from ladle.hosts.base import RuntimeSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SHELL_CHARS = frozenset("|&;<>()$`\\\"'*?[]#~%{}!\n")
# Words that `exec` cannot run: give the command to the shell as it is.
_SHELL_WORDS = frozenset(("if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done",
                          "case", "esac", "{", "}", "!", "exec", "cd", "export", "set", "unset", ".",
                          "source", "eval", "trap", "ulimit", "umask", "readonly", "shift", "wait",
                          "exit", ":", "alias", "local", "return", "break", "continue", "builtin"))
_PLAIN_WORD = re.compile(r"[\w./+-]+")
NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")
_NS_FLAGS = {"ipc": sc.CLONE_NEWIPC, "uts": sc.CLONE_NEWUTS, "net": sc.CLONE_NEWNET,
             "pid": sc.CLONE_NEWPID, "mnt": sc.CLONE_NEWNS}


class SetupError(Exception):
    """The pot could not be set up or its command not run; the message is one line."""


@dataclass(frozen=True)
class Launched:
    """Host pids of a started pot (with the start time that identifies pid 1)."""

    init_pid: int
    init_start: int | None
    main_pid: int | None


# The command and its environment --------------------------------------------------------------

def pot_env(spec: RuntimeSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the pot's processes see: sane defaults, the caller's TERM, the pot's env, `extra`."""
    env = {"PATH": DEFAULT_PATH, "HOME": "/root", "HOSTNAME": spec.hostname}
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    env.update(spec.env)
    env.update(extra or {})
    return env


def command_argv(cmd: str) -> tuple[list[str], str | None]:
    """The argv that runs pot's command line, and the program to look for in PATH first (for a
    clear error when it is missing).

    Plain words are exec'd directly. A single command with shell syntax (quotes, variables,
    redirections) runs as `/bin/sh -c 'exec <cmd>'` like pot's tinirc, so the program replaces
    the shell and gets signals itself; a list or pipeline (`a; b`, `a && b`, `a | b`) runs as
    `/bin/sh -c '<cmd>'`, where `exec` would cut the list short.
    """
    if not cmd.strip():
        raise SetupError("no command to run")
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = []
    if not words or words[0] in _SHELL_WORDS or "=" in words[0] or not _single_command(cmd):
        return ["/bin/sh", "-c", cmd], None
    if not any(c in _SHELL_CHARS for c in cmd):
        return words, None
    probe = words[0] if _PLAIN_WORD.fullmatch(words[0]) else None
    return ["/bin/sh", "-c", f"exec {cmd}"], probe


def _single_command(cmd: str) -> bool:
    """No control operator outside quotes: not a list, pipeline, subshell or background job."""
    if "\n" in cmd:
        return False
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars=";&|()<>")  # `2>&1` is no operator
    lexer.whitespace_split = True
    try:
        return not any(tok and set(tok) <= set(";&|()") for tok in lexer)
    except ValueError:
        return False


def _search(file: str, env: dict[str, str]) -> list[str]:
    if "/" in file:
        return [file]
    return [os.path.join(d or ".", file) for d in env.get("PATH", DEFAULT_PATH).split(":")]


def find_program(file: str, env: dict[str, str]) -> str | None:
    for path in _search(file, env):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def exec_command(argv: list[str], env: dict[str, str]) -> NoReturn:
    """execve argv[0], searching PATH in the environment given (inside the pot)."""
    error: OSError | None = None
    for path in _search(argv[0], env):
        try:
            os.execve(path, argv, env)
        except (FileNotFoundError, NotADirectoryError) as e:
            error = error or e
        except OSError as e:
            error = e
            if e.errno != errno.EACCES:  # keep looking past EACCES, like execvp
                break
    reason = error.strerror if error else "No such file or directory"
    raise SetupError(f"cannot run {argv[0]!r}: {reason}")


# Small helpers for forked children -------------------------------------------------------------

def _report(fd: int, kind: str, text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, f"{kind} {text.splitlines()[0] if text else 'failed'}\n".encode())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (SetupError, mounts.MountError, HostError, UsageError)):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _default_signals(mask: set[int | signal.Signals] | None = None) -> None:
    """Reset dispositions Python changed (SIGPIPE, SIGXFSZ ignored; SIGINT handled): an exec'd
    program would otherwise inherit the ignored ones."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask or set())


def _stdio(fds: Sequence[int]) -> None:
    for i, fd in enumerate(fds):
        if fd == i:
            os.set_inheritable(i, True)
        else:
            os.dup2(fd, i)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _ns_pid_to_host(parent: int, ns_pid: int) -> int | None:
    """The host pid of `parent`'s child known as `ns_pid` inside the pot."""
    try:
        with open(f"/proc/{parent}/task/{parent}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return None
    for child in children:
        try:
            with open(f"/proc/{child}/status") as f:
                for line in f:
                    if line.startswith("NSpid:") and int(line.split()[-1]) == ns_pid:
                        return child
        except OSError:
            continue
    return None


# Launching a pot --------------------------------------------------------------------------------

def check_spec(spec: RuntimeSpec) -> None:
    """Refuse what Linux cannot do before anything is forked."""
    if spec.attrs.get("sysvipc", "new") == "disable":
        raise UsageError("attribute sysvipc=disable is not supported on linux (use new or inherit)")


def launch(spec: RuntimeSpec, stdio: Sequence[int], *, take_tty: bool = False) -> Launched:
    """Start the pot's pid 1 and main process; return once the main process has exec'd.

    Raises SetupError with the reason when set-up or exec fails (pid 1 is then gone)."""
    check_spec(spec)
    r, w = os.pipe()
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, init.WAITED)
    pid = -1
    try:
        sc.unshare(sc.CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                _pid1(spec, r, w, stdio, take_tty, old_mask)
        finally:
            if pid != 0:
                sc.setns(own_pidns, sc.CLONE_NEWPID)
    except OSError as e:
        os.close(r)
        raise SetupError(f"pot {spec.name}: cannot create its namespaces: {_reason(e)}") from None
    finally:
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            os.close(own_pidns)
            os.close(w)
    init_start = proc.start_time(pid)  # now, while it surely runs (it may end right after exec)
    try:
        report = _read_all(r).decode(errors="replace")
    finally:
        os.close(r)
    ns_main = None
    errors = []
    for line in report.splitlines():
        kind, _, text = line.partition(" ")
        if kind == "P":
            ns_main = int(text)
        elif kind == "E":
            errors.append(text)
    if errors or ns_main is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        reason = errors[0] if errors else "its init died during set-up"
        raise SetupError(f"pot {spec.name}: {reason}")
    return Launched(pid, init_start, _ns_pid_to_host(pid, ns_main))


def setup(spec: RuntimeSpec) -> None:
    """In pid 1 of the new pid namespace: namespaces, file system, hostname, loopback, pivot."""
    own_net = spec.network != "inherit"
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS
    if spec.attrs.get("sysvipc", "new") != "inherit":
        flags |= sc.CLONE_NEWIPC
    if own_net:
        flags |= sc.CLONE_NEWNET
    sc.unshare(flags)
    mounts.make_private()
    root = os.path.join(spec.run_dir, "root")
    root_fd = mounts.mount_tree(spec.root, spec.mounts, root)
    try:
        if spec.attr_on("procfs"):
            mounts.mount_proc(root_fd)
        mounts.mount_dev(root_fd, spec.attr_on("fdescfs") and spec.attr_on("procfs"))
        mounts.mount_sys(root_fd)
        mounts.protect(root_fd)
    finally:
        os.close(root_fd)
    if own_net:
        sc.interface_up("lo")
    sc.sethostname(spec.hostname)
    mounts.pivot(root)


def _pid1(spec: RuntimeSpec, r: int, w: int, stdio: Sequence[int], take_tty: bool,
          old_mask: set[int | signal.Signals]) -> NoReturn:
    gc.disable()
    try:
        os.close(r)
        sc.close_from(3, keep=(w, *stdio))  # the caller's locks, database, ready pipe
        sc.set_title(f"ladle-init {spec.name}")
        setup(spec)
        caps.drop(spec.attr_on("mlock"))
        argv, probe = command_argv(spec.cmd)
        env = pot_env(spec)
        if probe and find_program(probe, env) is None:
            raise SetupError(f"cannot run {probe!r}: No such file or directory")
        main = os.fork()
        if main == 0:
            _main(argv, env, stdio, take_tty, w, old_mask)
        os.write(w, f"P {main}\n".encode())
        os.close(w)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        sc.close_from(3)
        init.run(main, spec.persistent)
    except BaseException as e:
        _report(w, "E", _reason(e))
    os._exit(127)


def _main(argv: list[str], env: dict[str, str], stdio: Sequence[int], take_tty: bool, w: int,
          old_mask: set[int | signal.Signals]) -> NoReturn:
    try:
        os.setpgid(0, 0)
        if take_tty:  # SIGTTOU is blocked here, so a background group may take the terminal
            os.tcsetpgrp(stdio[0], os.getpgrp())
        _stdio(stdio)
        sc.close_from(3, keep=(w,))
        _default_signals(old_mask)
        exec_command(argv, env)
    except BaseException as e:
        _report(w, "E", _reason(e))
    os._exit(127)


# Entering a running pot (exec, copy) -------------------------------------------------------------

@dataclass
class Entry:
    """Descriptors of a running pot's namespaces and root, opened while its pid 1 was verified."""

    init_pid: int
    ns: dict[str, int]
    root: int

    def close(self) -> None:
        for fd in (*self.ns.values(), self.root):
            os.close(fd)


def open_entry(init_pid: int | None, init_start: int | None, names: Sequence[str] = NAMESPACES,
               ) -> Entry | None:
    """Open the namespaces that differ from ours; None when the pot is not running."""
    if init_pid is None or not proc.alive(init_pid, init_start):
        return None
    ns: dict[str, int] = {}
    try:
        for name in names:
            theirs = f"/proc/{init_pid}/ns/{name}"
            if os.stat(theirs).st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                ns[name] = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
        root = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        for fd in ns.values():
            os.close(fd)
        return None
    if not proc.alive(init_pid, init_start):  # the pid was reused while we opened: not ours
        Entry(init_pid, ns, root).close()
        return None
    return Entry(init_pid, ns, root)


def join(entry: Entry) -> None:
    """In a forked child: join the pot's namespaces (pid applies to its children) and root."""
    for name in ("ipc", "uts", "net", "mnt"):
        if name in entry.ns:
            sc.setns(entry.ns[name], _NS_FLAGS[name])
    os.fchdir(entry.root)
    os.chroot(".")
    os.chdir("/")


def spawn_in(entry: Entry, argv: list[str], env: dict[str, str], *, mlock: bool,
             stdio: Sequence[int] = (0, 1, 2), tty: int | None = None) -> int:
    """Fork a process inside the running pot, in its pid namespace, with the pot's capability
    set; returns its pid once it has exec'd, or raises SetupError with the reason."""
    r, w = os.pipe()
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    pid = -1
    try:
        if "pid" in entry.ns:
            sc.setns(entry.ns["pid"], sc.CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                _entered(entry, argv, env, mlock, stdio, tty, w)
        finally:
            if pid != 0 and "pid" in entry.ns:
                sc.setns(own_pidns, sc.CLONE_NEWPID)
    except OSError as e:
        os.close(r)
        raise SetupError(f"cannot enter the pot: {_reason(e)}") from None
    finally:
        if pid != 0:
            os.close(own_pidns)
            os.close(w)
    try:
        report = _read_all(r).decode(errors="replace")
    finally:
        os.close(r)
    if report:
        os.waitpid(pid, 0)
        raise SetupError(report.partition(" ")[2].strip())
    return pid


def _entered(entry: Entry, argv: list[str], env: dict[str, str], mlock: bool,
             stdio: Sequence[int], tty: int | None, w: int) -> NoReturn:
    gc.disable()
    try:
        join(entry)
        caps.drop(mlock)
        if tty is not None:
            import fcntl
            import termios
            os.setsid()
            fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
            stdio = (tty, tty, tty)
        _stdio(stdio)
        sc.close_from(3, keep=(w,))
        _default_signals()
        exec_command(argv, env)
    except BaseException as e:
        _report(w, "E", _reason(e))
    os._exit(127)
