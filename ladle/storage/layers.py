"""Image layers as snapshots: one committed snapshot per layer, keyed by its chain id, so every
image and pot that has the layer (with the same layers below it) shares one unpacked tree.

A layer blob (tar, gzip or zstd) is first decompressed into a temporary plain tar beside its
destination while its sha256 is taken: a layer whose uncompressed digest is not the config's
diff_id is refused before anything is unpacked. The tar is then checked and unpacked by
`tarsafe.extract_layer`, with the same rules as a base's tarball plus whiteouts.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shlex
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

from ladle.errors import HostError, UsageError
from ladle.plan.steps import Context, Step
from ladle.storage.tarsafe import Limits, Unflag, extract_layer

TAR = "application/vnd.oci.image.layer.v1.tar"
GZIP = (TAR + "+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
ZSTD = (TAR + "+zstd", "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
PLAIN = (TAR, "application/vnd.oci.image.layer.nondistributable.v1.tar")
LAYER_TYPES = (*PLAIN, *GZIP, *ZSTD)
SNAP = "layer"  # the one snapshot of a layer's key
_CHUNK = 1 << 20


def chain_ids(diff_ids: list[str]) -> list[str]:
    """image-spec's ChainID of each prefix of the layers: the first is its diff_id, each next one
    sha256 of the one before, a space, and its own diff_id."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def key_of(chain_id: str) -> str:
    """The snapshotter key of the layer with this chain id."""
    return "layers/" + chain_id.split(":", 1)[1]


def _reader(media_type: str, raw: IO[bytes]) -> Any:
    """A file object reading the layer's plain tar."""
    if media_type in GZIP:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if media_type in ZSTD:
        import zstandard  # only for zstd layers
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if media_type in PLAIN:
        return raw
    raise UsageError(f"layer of an unsupported media type {media_type!r}")


def decompress(blob: str, media_type: str, out: str, diff_id: str, cap: int) -> None:
    """Write the plain tar of layer `blob` to `out`; refuse it unless its sha256 is `diff_id`
    and it is at most `cap` bytes (a bomb stops there, not when the disk is full)."""
    h = hashlib.sha256()
    total = 0
    try:
        with open(blob, "rb") as raw, _reader(media_type, raw) as src, open(out, "xb") as dst:
            while chunk := src.read(_CHUNK):
                total += len(chunk)
                if total > cap:
                    raise UsageError(f"layer {diff_id} unpacks to more than max_unpacked_size")
                h.update(chunk)
                dst.write(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise UsageError(f"layer {diff_id} is truncated or corrupt: {e or type(e).__name__}") from None
    except OSError as e:
        raise HostError(f"cannot decompress layer {diff_id}: {e.strerror or e}") from None
    except Exception as e:  # zstandard.ZstdError, which needs the module to name
        if type(e).__name__ != "ZstdError":
            raise
        raise UsageError(f"layer {diff_id} is truncated or corrupt zstd data: {e}") from None
    got = "sha256:" + h.hexdigest()
    if got != diff_id:
        raise UsageError(f"layer {diff_id} does not match its diff_id: its uncompressed content is {got}")


@dataclass
class UnpackLayer(Step):
    """Unpack one layer blob into `dest` (a new layer's tree); undo is the layer's removal.
    `mode` and `lowers` as in `tarsafe.extract_layer`.

    With `flags` (a FreeBSD host), what the layer removes or replaces in the tree below loses its
    system-immutable flag first (`chflags -R -x noschg` on each whiteout's path and opaque
    directory, `chflags -h noschg` on each replaced path: -h and -R's default -P never follow a
    link), as a file with schg cannot be unlinked or changed even by root. FreeBSD's images are
    made by bsdtar, which keeps file flags; ladle's extraction does not set them (bsdtar's
    `--no-fflags`), but a tree below may have them (a committed pot's, where allow.chflags lets
    the jail's root set them)."""

    blob: str
    media_type: str
    diff_id: str
    dest: str
    mode: str = "full"
    lowers: list[str] = field(default_factory=list)
    max_size: int = Limits.max_size
    max_members: int = Limits.max_members
    max_depth: int = Limits.max_depth
    flags: bool = False

    def render(self) -> list[str]:
        unz = {**dict.fromkeys(GZIP, "gzip -dc"), **dict.fromkeys(ZSTD, "zstd -dc")}.get(self.media_type, "cat")
        tmp = self._tmp()
        lines = [f"# {unz} {shlex.quote(self.blob)} > {shlex.quote(tmp)}, refused unless its sha256 is {self.diff_id};",
                 f"# its members checked (tarsafe), its whiteouts applied ({self.mode}), then:"]
        if self.flags:
            lines += ["# before the whiteouts, for the existing paths they remove (PATH...: found in the tar):",
                      shlex.join(unflag_argv([f"{self.dest}/PATH..."], True)),
                      "# and for the existing paths the members replace:",
                      shlex.join(unflag_argv([f"{self.dest}/PATH..."], False))]
        tar = ["tar", "-x", "-p", *(["--no-fflags"] if self.flags else []), "-f", tmp, "-C", self.dest]
        return [*lines, shlex.join(tar), shlex.join(["rm", "-f", tmp])]

    def _tmp(self) -> str:
        return f"{self.dest.rstrip('/')}.tar.part"

    def apply(self, ctx: Context) -> None:
        tmp = self._tmp()
        if os.path.lexists(tmp):
            os.unlink(tmp)  # what a crash left
        try:
            decompress(self.blob, self.media_type, tmp, self.diff_id,
                       self.max_size + 1536 * self.max_members + (1 << 20))
            extract_layer(tmp, self.dest, Limits(self.max_size, self.max_members, self.max_depth),
                          self.mode, tuple(self.lowers), self._unflag(ctx) if self.flags else None)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

    @staticmethod
    def _unflag(ctx: Context) -> Unflag:
        def unflag(paths: list[str], tree: bool) -> None:
            for i in range(0, len(paths), _BATCH):
                ctx.runner.run(unflag_argv(paths[i:i + _BATCH], tree))
        return unflag


_BATCH = 256  # paths per chflags command, well under ARG_MAX


def unflag_argv(paths: list[str], tree: bool) -> list[str]:
    """chflags(1) clearing schg: on whole trees (-R, not following links, -x: one file system),
    or on the paths themselves (-h: a link's own flags, never its target's)."""
    return ["chflags", *(["-R", "-x"] if tree else ["-h"]), "noschg", *paths]
