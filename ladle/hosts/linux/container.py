"""A pot's command line and environment, and entering a running pot's namespaces and root.

The processes themselves are started by the monitor (`launch`); what is here is shared by the
launcher, the plan steps that render what it does, and the copies and live mounts that fork
into a running pot.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ladle import platform
from ladle.errors import UsageError
from ladle.hosts.linux import syscalls as sc
from ladle.supervise.spawn import DEFAULT_PATH, SpawnError, search

if TYPE_CHECKING:
    from ladle.hosts.base import RuntimeSpec

_SHELL_CHARS = frozenset("|&;<>()$`\\\"'*?[]#~%{}!\n")
# Words that `exec` cannot run: give the command to the shell as it is.
_SHELL_WORDS = frozenset(("if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done",
                          "case", "esac", "{", "}", "!", "exec", "cd", "export", "set", "unset", ".",
                          "source", "eval", "trap", "ulimit", "umask", "readonly", "shift", "wait",
                          "exit", ":", "alias", "local", "return", "break", "continue", "builtin"))
_PLAIN_WORD = re.compile(r"[\w./+-]+")
SHARED_NET = ("inherit", "alias")  # network types that use the host's network namespace
NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")
_NS_FLAGS = {"ipc": sc.CLONE_NEWIPC, "uts": sc.CLONE_NEWUTS, "net": sc.CLONE_NEWNET,
             "pid": sc.CLONE_NEWPID, "mnt": sc.CLONE_NEWNS}


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
        raise SpawnError("no command to run")
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


def spec_argv(spec: RuntimeSpec) -> tuple[list[str], str | None]:
    """The pot's argv and the program to look for first: an image's exec form as it is (many
    images have no /bin/sh), else pot's command line as `command_argv` reads it."""
    if spec.argv is not None:
        if not spec.argv:
            raise SpawnError("no command to run")
        return list(spec.argv), spec.argv[0] if "/" not in spec.argv[0] else None
    return command_argv(spec.cmd)


def resolve_user(user: str, root: str = "/") -> tuple[int, int, list[int]]:
    """image-spec's User (`user`, `uid`, `user:group`, `uid:gid`, ...) as uid, gid and the
    supplementary groups, from the pot's own /etc/passwd and /etc/group (read under `root`, the
    pot's root once joined). A name it does not know is an error; numbers need no entry."""
    name, _, group = user.partition(":")
    passwd = _entries(os.path.join(root, "etc/passwd"))
    groups = _entries(os.path.join(root, "etc/group"))
    by_name = {e[0]: e for e in passwd if len(e) >= 4}
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd if len(e) >= 4 and e[2] == name), None)
    elif name in by_name:
        entry = by_name[name]
        uid = int(entry[2])
    else:
        raise SpawnError(f"unable to find user {name}: no matching entries in the pot's /etc/passwd")
    if group:
        if group.isdigit():
            return uid, int(group), []
        found = next((g for g in groups if len(g) >= 3 and g[0] == group), None)
        if found is None:
            raise SpawnError(f"unable to find group {group}: no matching entries in the pot's /etc/group")
        return uid, int(found[2]), []
    gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    login = entry[0] if entry else None
    extra = [int(g[2]) for g in groups if len(g) >= 4 and g[2].isdigit() and login in g[3].split(",")]
    return uid, gid, sorted(set(extra) - {gid})


def _entries(path: str, limit: int = 4 << 20) -> list[list[str]]:
    """The colon-separated lines of a pot's passwd or group file; none if it is missing or is
    not a regular file (a FIFO there must not hang the spawn)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        text = f.read(limit).decode(errors="replace")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def become(user: str) -> None:
    """Take the identity of image-spec's `user` (in the pot, before exec; capabilities go with root)."""
    uid, gid, extra = resolve_user(user)
    os.setgroups(extra)
    os.setgid(gid)
    os.setuid(uid)


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


def find_program(file: str, env: dict[str, str]) -> str | None:
    for path in search(file, env):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def check_spec(spec: RuntimeSpec) -> None:
    """Refuse what Linux cannot do before anything is forked."""
    if spec.attrs.get("sysvipc", "new") == "disable":
        raise UsageError("attribute sysvipc=disable is not supported on linux (use new or inherit)")


def namespaces(spec: RuntimeSpec) -> list[str]:
    """The namespaces a pot gets besides its pid namespace."""
    ns = ["mnt", "uts"]
    if spec.attrs.get("sysvipc", "new") != "inherit":
        ns.append("ipc")
    if spec.network not in SHARED_NET:
        ns.append("net")
    return ns


# Entering a running pot (exec, copy, live mounts) -------------------------------------------------

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
    if init_pid is None or not platform.alive(init_pid, init_start):
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
    if not platform.alive(init_pid, init_start):  # the pid was reused while we opened: not ours
        Entry(init_pid, ns, root).close()
        return None
    return Entry(init_pid, ns, root)


def join(entry: Entry, cwd: str = "/") -> None:
    """In a forked child: join the pot's namespaces (pid applies to its children only) and root."""
    for name in ("ipc", "uts", "net", "mnt"):
        if name in entry.ns:
            sc.setns(entry.ns[name], _NS_FLAGS[name])
    os.fchdir(entry.root)
    os.chroot(".")
    os.chdir(cwd)
