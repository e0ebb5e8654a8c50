"""Files that appear whole or not at all: written to a temporary file beside their name, made
durable (fsync), then renamed over it; a failure (or a check the caller makes at the end of the
block) unlinks the temporary file, so the name never shows half a file. The content store's
blobs, `save`'s archives and `login`'s auth file are written this way."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def replacing(path: str, mode: int, *, tmp_name: str | None = None, buffering: int = -1,
              sync_dir: bool = False) -> Iterator[BinaryIO]:
    """A new file for `path`, open for writing (created with `mode`, never through a link, in
    `path`'s directory as `tmp_name` or `.NAME.ladle-RANDOM`); at the end of the block it is
    flushed, fsynced and renamed to `path` (and, with `sync_dir`, the directory fsynced, so the
    rename survives a power cut). An exception in the block leaves `path` as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, tmp_name or f".{os.path.basename(path)}.ladle-{secrets.token_hex(6)}")
    fd = os.open(tmp, _CREATE, mode)
    try:
        with os.fdopen(fd, "wb", buffering=buffering) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        sync(directory)


def sync(directory: str) -> None:
    """fsync a directory (what was renamed into it is on disk)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
