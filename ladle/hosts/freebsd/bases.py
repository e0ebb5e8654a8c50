"""FreeBSD bases: base.txz of a release, downloaded, checked against MANIFEST, extracted.

Layout of the release mirrors: `<mirror>/<machine>/<machine_arch>/<REL>/{MANIFEST,base.txz}`,
e.g. https://download.freebsd.org/releases/amd64/amd64/14.2-RELEASE/base.txz. Downloads are kept
in `<cache>/<REL>/` (pot keeps base.txz in /var/cache/pot too); the release itself is recorded
in the state store's `bases` table by the engine, so nothing is written into the tree besides
base.txz's own files (pot's `.osrelease` is not needed: the store is the source of truth, and
/bin/freebsd-version in the tree tells the userland's version, which `userland_version` reads).
"""

from __future__ import annotations

import os
import re
import stat

from ladle.errors import UsageError
from ladle.hosts.freebsd.steps import BaseExtract, BaseFetch, BaseVerify
from ladle.paths import resolve_in_root
from ladle.plan.steps import Cmd, Step

DEFAULT_MIRROR = "https://download.freebsd.org/releases"

# hw.machine -> hw.machine_arch for the release directories, where they differ (for an `arch`
# setting, which names hw.machine only).
MACHINE_ARCH = {"arm64": "aarch64", "riscv": "riscv64", "powerpc": "powerpc64", "arm": "armv7"}

# The line freebsd-version(1) carries its userland version in (bin/freebsd-version/
# freebsd-version.sh.in: USERLAND_VERSION="@@REVISION@@-@@BRANCH@@"), e.g. 14.2-RELEASE-p1;
# at most 31 characters, what kern.osrelease holds.
_USERLAND = re.compile(r'USERLAND_VERSION="(\d{1,3}\.\d{1,3}-[A-Za-z0-9.-]{1,24})"')

_RELEASE = re.compile(r"(\d{1,2})\.(\d{1,2})(?:-(RELEASE|RC\d{1,2}|BETA\d{1,2}|ALPHA\d{1,2}))?", re.IGNORECASE)


def canonical_release(release: str) -> str:
    """'14.2' -> '14.2-RELEASE'; '14.2-release' -> '14.2-RELEASE'; '13.5-rc1' -> '13.5-RC1'."""
    m = _RELEASE.fullmatch(release.strip())
    if not m:
        raise UsageError(f"invalid FreeBSD release {release!r}: use e.g. 14.2, 14.2-RELEASE or 15.0-RC1")
    major, minor, kind = m.groups()
    return f"{int(major)}.{int(minor)}-{(kind or 'RELEASE').upper()}"


def userland_version(tree: str) -> str | None:
    """The userland version of the FreeBSD tree at `tree`, from its bin/freebsd-version, as pot
    reads it for `osrelease`; None if there is none. The file is found without following a
    symbolic link out of the tree, and only a regular file is read (a FIFO planted there would
    block)."""
    try:
        path = resolve_in_root(tree, "/bin/freebsd-version")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, UsageError):
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = f.read(1 << 16).decode(errors="replace")
    for line in text.splitlines():
        m = _USERLAND.fullmatch(line.strip())
        if m:
            return m.group(1)
    return None


def release_dir_url(mirror: str, machine: str, machine_arch: str, release: str) -> str:
    for arch in (machine, machine_arch):
        if not re.fullmatch(r"[a-z0-9]+", arch):
            raise UsageError(f"invalid architecture {arch!r}")
    if not re.match(r"(https?|ftp|file)://", mirror):
        raise UsageError(f"mirror {mirror!r} must be an https://, http://, ftp:// or file:// URL")
    return f"{mirror.rstrip('/')}/{machine}/{machine_arch}/{release}"


def release_base_steps(release: str, dest: str, cache: str, mirror: str = DEFAULT_MIRROR,
                       machine: tuple[str, str] = ("amd64", "amd64")) -> list[Step]:
    """Fill the empty tree `dest` with base.txz of `release`, verified against the MANIFEST.

    `machine` is (hw.machine, hw.machine_arch), e.g. ('arm64', 'aarch64'). Steps: make the cache
    directory, fetch MANIFEST and base.txz, compare base.txz's sha256 with its MANIFEST line (a
    bad download is deleted), extract with bsdtar's safe defaults.
    """
    rel = canonical_release(release)
    url = release_dir_url(mirror or DEFAULT_MIRROR, *machine, rel)
    where = f"{cache.rstrip('/')}/{rel}"
    manifest, archive = f"{where}/MANIFEST", f"{where}/base.txz"
    return [
        Cmd(["mkdir", "-p", where]),
        BaseFetch(f"{url}/MANIFEST", manifest),
        BaseFetch(f"{url}/base.txz", archive),
        BaseVerify(archive, manifest, "base.txz"),
        BaseExtract(archive, dest),
    ]
