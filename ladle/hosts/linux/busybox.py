"""A tiny Linux base built offline from the host's static busybox: one binary, a link per applet.

A static binary is required because the base has no C library; a dynamic one would fail inside the
pot with a confusing "not found". We check the ELF program headers for PT_INTERP (the dynamic
loader) rather than trusting file names.
"""

from __future__ import annotations

import os
import re
import shutil
import struct

from ladle.errors import HostError

CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox")
PT_INTERP = 3

DIRS = (("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755),
        ("usr/local", 0o755), ("usr/local/bin", 0o755), ("etc", 0o755), ("root", 0o700),
        ("tmp", 0o1777), ("var", 0o755), ("var/log", 0o755), ("var/tmp", 0o1777), ("run", 0o755),
        ("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("home", 0o755), ("mnt", 0o755))

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
www-data:x:33:
nogroup:x:65534:
"""
HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
"""


def find() -> str:
    """The host's busybox, or HostError saying how to get one."""
    found = shutil.which("busybox")
    for path in (found, *CANDIDATES):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.realpath(path)
    raise HostError("busybox not found on this host (on Debian: apt-get install busybox-static)")


def is_static(path: str) -> bool:
    """True if `path` is an ELF executable with no program interpreter (statically linked)."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if len(ident) < 64 or ident[:4] != b"\x7fELF":
            raise HostError(f"{path} is not an ELF executable")
        is64 = ident[4] == 2
        order = "<" if ident[5] == 1 else ">"
        if is64:
            phoff, = struct.unpack_from(order + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(order + "HH", ident, 54)
        else:
            phoff, = struct.unpack_from(order + "I", ident, 28)
            phentsize, phnum = struct.unpack_from(order + "HH", ident, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == PT_INTERP:
            return False
    return True


def check(path: str) -> None:
    if not is_static(path):
        raise HostError(f"{path} is dynamically linked; the busybox base needs a static busybox"
                        " (on Debian: apt-get install busybox-static)")


def version(path: str) -> str:
    """The version string compiled into the binary ('1.35.0'), read without running it."""
    with open(path, "rb") as f:
        m = re.search(rb"BusyBox v(\d+(?:\.\d+)+)", f.read())
    return m.group(1).decode() if m else "unknown"


def os_release(ver: str) -> str:
    return (f'NAME="ladle busybox"\nID=ladle-busybox\nVERSION_ID={ver}\n'
            f'PRETTY_NAME="ladle busybox base (BusyBox {ver})"\n')


def applets(listing: str) -> list[str]:
    """Relative paths of applet links from `busybox --list-full` (entries without a directory,
    like 'linuxrc', and anything trying to climb out are skipped)."""
    out = []
    for line in listing.split():
        path = line.strip().lstrip("/")
        if "/" in path and ".." not in path.split("/") and path != "bin/busybox":
            out.append(path)
    return out


def build(dest: str, busybox: str, links: list[str]) -> None:
    """Lay out the tree under the empty directory `dest` (the etc files are written by steps)."""
    old = os.umask(0)
    try:
        for path, mode in DIRS:
            full = os.path.join(dest, path)
            os.makedirs(full, exist_ok=True)
            os.chmod(full, mode)
    finally:
        os.umask(old)
    target = os.path.join(dest, "bin", "busybox")
    shutil.copyfile(busybox, target)
    os.chmod(target, 0o755)
    for link in links:
        full = os.path.join(dest, link)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if not os.path.lexists(full):
            os.symlink("/bin/busybox", full)
