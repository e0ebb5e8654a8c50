"""The content store: blobs addressed by sha256 under `<root>/images/blobs/sha256/<hex>`.

A blob streams into a temporary file in the same directory, is hashed and counted as it comes,
and is renamed to its name only once its size and digest are right and it is on disk (fsync of
the file, then of the directory). A crash leaves at most a `.partial-PID-*` file, never a blob
with a wrong content; `prune` removes those of processes that are gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from typing import BinaryIO

from ladle import files
from ladle import platform as proc
from ladle.errors import Busy, HostError
from ladle.images.refs import DIGEST, check_digest

_PARTIAL = ".partial-"


class Writer:
    """One blob coming in: `write` what arrives (counted and hashed); `check` it before it is named."""

    def __init__(self, digest: str, size: int, source: str, out: BinaryIO) -> None:
        self.digest, self.size, self.source, self.out = digest, size, source, out
        self.hash = hashlib.sha256()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.written > self.size:
            raise HostError(f"blob {self.digest} from {self.source} is larger than its {self.size} bytes")
        self.hash.update(data)
        view = memoryview(data)
        while view:
            view = view[self.out.write(view):]

    def check(self) -> None:
        if self.written != self.size:
            raise HostError(f"blob {self.digest} from {self.source} ended after {self.written} of {self.size} bytes")
        got = "sha256:" + self.hash.hexdigest()
        if got != self.digest:
            raise HostError(f"blob {self.digest} from {self.source} has digest {got}: refused")


class Held:
    """The store's lock as one command holds it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def upgrade(self) -> bool:
        """Make a shared hold exclusive if no one else holds the lock (never waits)."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False


class BlobStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.dir = os.path.join(root, "images", "blobs", "sha256")

    @contextlib.contextmanager
    def lock(self, *, shared: bool, timeout: float) -> Iterator[Held]:
        """Pulls and pushes hold the store shared (many at once); what removes blobs (rmi, prune,
        a failed pull's clean-up) holds it alone, so no blob goes while one is in use."""
        top = os.path.join(self.root, "locks")
        os.makedirs(top, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(top, "images.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline, pause = time.monotonic() + timeout, 0.001
            while True:
                try:
                    fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise Busy(f"the image store is busy: another ladle command held it for {timeout:g}s") \
                            from None
                    time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                    pause = min(pause * 2, 0.05)
            yield Held(fd)
        finally:
            os.close(fd)

    def ensure(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)

    def path(self, digest: str) -> str:
        return os.path.join(self.dir, check_digest(digest)[len("sha256:"):])

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            st = os.stat(self.path(digest), follow_symlinks=False)
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def size(self, digest: str) -> int:
        return os.stat(self.path(digest), follow_symlinks=False).st_size

    @contextlib.contextmanager
    def writer(self, digest: str, size: int, source: str) -> Iterator[Writer]:
        """Write one blob; it becomes visible only if the block ends normally and it checks out."""
        check_digest(digest)
        self.ensure()
        tmp = f"{_PARTIAL}{os.getpid()}-{secrets.token_hex(6)}"  # `partials_of_the_dead` reads the pid
        with files.replacing(self.path(digest), 0o644, tmp_name=tmp, buffering=0, sync_dir=True) as out:
            w = Writer(digest, size, source, out)
            yield w
            w.check()

    def put(self, data: bytes, digest: str, source: str) -> None:
        with self.writer(digest, len(data), source) as w:
            w.write(data)

    def read(self, digest: str, limit: int) -> bytes:
        """A small blob (a manifest, a config), checked again against its digest."""
        path = self.path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise HostError(f"blob {digest} is missing from the image store") from None
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise HostError(f"blob {digest} in the image store is damaged: run 'ladle image prune' and pull again")
        return data

    def open(self, digest: str) -> int:
        """A descriptor to read a blob with (uploads stream from it)."""
        return os.open(self.path(digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def digests(self) -> list[str]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + n for n in names if DIGEST.fullmatch("sha256:" + n))

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))

    def partials_of_the_dead(self) -> list[str]:
        """Temporary files left by processes that crashed while writing a blob."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            pid = n[len(_PARTIAL):].split("-", 1)[0]
            if n.startswith(_PARTIAL) and pid.isdigit() and not proc.alive(int(pid), None):
                out.append(os.path.join(self.dir, n))
        return out

