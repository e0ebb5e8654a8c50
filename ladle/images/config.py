"""An image config (image-spec's `application/vnd.oci.image.config.v1+json`, Docker's container
image v1) read into what running it needs.

Keys are matched without regard to case, as Go's decoder (podman, skopeo) does: FreeBSD's release
images say `cmd`, not `Cmd` (oci.md §3.4). `null` is the same as absent; unknown keys are ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ladle.errors import HostError
from ladle.images.refs import DIGEST

_SIGNAL = re.compile(r"(SIG)?[A-Z0-9]+([+-][0-9]+)?|[0-9]+")
_PORT = re.compile(r"[0-9]{1,5}(/(tcp|udp|sctp))?")


@dataclass(frozen=True)
class ImageConfig:
    os: str
    architecture: str
    diff_ids: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    # Healthcheck: test (["CMD", ...], ["CMD-SHELL", "..."] or ["NONE"]), interval, timeout,
    # start_period (nanoseconds, 0 for the default) and retries; None when the image has none
    healthcheck: dict[str, Any] | None = None
    shell: tuple[str, ...] = ()  # Docker's `Shell`: what a CMD-SHELL check runs under (else /bin/sh -c)


def _folded(doc: dict[str, Any]) -> dict[str, Any]:
    """Keys in lower case (the first of two that differ only in case wins, as in Go)."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        out.setdefault(k.lower(), v)
    return out


def _strings(value: Any, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) and "\0" not in x for x in value):
        raise HostError(f"image config {where}: {what} is not a list of strings")
    return tuple(value)


def _string(value: Any, what: str, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or "\0" in value or len(value) > 4096:
        raise HostError(f"image config {where}: {what} is not a string")
    return value


def _keys(value: Any, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise HostError(f"image config {where}: {what} is not an object")
    return tuple(sorted(str(k) for k in value))


def _nanoseconds(value: Any, what: str, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HostError(f"image config {where}: Healthcheck {what} is not a number of nanoseconds")
    return value


def _healthcheck(value: Any, where: str) -> dict[str, Any] | None:
    """Docker's `Healthcheck` (an empty Test means none, as in Docker: inherit, and there is
    nothing to inherit from)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise HostError(f"image config {where}: Healthcheck is not an object")
    h = _folded(value)
    test = _strings(h.get("test"), "Healthcheck Test", where)
    if not test:
        return None
    if test[0] not in ("NONE", "CMD", "CMD-SHELL") or (test[0] != "NONE" and not "".join(test[1:]).strip()) \
            or (test[0] == "CMD-SHELL" and len(test) != 2):
        raise HostError(f"image config {where}: Healthcheck Test is not [\"CMD\", ...], [\"CMD-SHELL\", CMD]"
                        " or [\"NONE\"]")
    retries = h.get("retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        raise HostError(f"image config {where}: Healthcheck Retries is not a number")
    return {"test": list(test), "retries": retries or 0,
            **{k: _nanoseconds(h.get(k.replace("_", "")), k, where) for k in ("interval", "timeout", "start_period")}}


def parse(body: bytes, where: str) -> ImageConfig:
    """The config of image `where`; one line of error if it cannot be run as an image."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HostError(f"image config {where} is not JSON") from None
    if not isinstance(doc, dict):
        raise HostError(f"image config {where} is not a JSON object")
    top = _folded(doc)
    rootfs = top.get("rootfs")
    rootfs = _folded(rootfs) if isinstance(rootfs, dict) else {}
    if rootfs.get("type") != "layers":
        raise HostError(f"image config {where}: rootfs.type is not 'layers'")
    diff_ids = _strings(rootfs.get("diff_ids"), "rootfs.diff_ids", where)
    if not all(DIGEST.fullmatch(d) for d in diff_ids):
        raise HostError(f"image config {where}: a diff_id is not a sha256 digest")
    c = top.get("config")
    c = _folded(c) if isinstance(c, dict) else {}
    env = _strings(c.get("env"), "Env", where)
    if not all("=" in e and e.index("=") > 0 for e in env):
        raise HostError(f"image config {where}: an Env entry is not NAME=VALUE")
    ports = _keys(c.get("exposedports"), "ExposedPorts", where)
    if not all(_PORT.fullmatch(p) for p in ports):
        raise HostError(f"image config {where}: an exposed port is not PORT[/PROTO]")
    volumes = _keys(c.get("volumes"), "Volumes", where)
    if not all(v.startswith("/") and "\0" not in v and ".." not in v.split("/") for v in volumes):
        raise HostError(f"image config {where}: a volume is not an absolute path")
    signal = _string(c.get("stopsignal"), "StopSignal", where)
    if signal and not _SIGNAL.fullmatch(signal):
        raise HostError(f"image config {where}: StopSignal {signal[:40]!r} is not a signal")
    workdir = _string(c.get("workingdir"), "WorkingDir", where)
    if workdir and (not workdir.startswith("/") or ".." in workdir.split("/")):
        raise HostError(f"image config {where}: WorkingDir {workdir[:60]!r} is not an absolute path")
    labels = c.get("labels")
    return ImageConfig(
        os=_string(top.get("os"), "os", where), architecture=_string(top.get("architecture"), "architecture", where),
        diff_ids=diff_ids, entrypoint=_strings(c.get("entrypoint"), "Entrypoint", where),
        cmd=_strings(c.get("cmd"), "Cmd", where), env=env, workdir=workdir,
        user=_string(c.get("user"), "User", where), exposed_ports=ports, volumes=volumes, stop_signal=signal,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        healthcheck=_healthcheck(c.get("healthcheck"), where), shell=_strings(c.get("shell"), "Shell", where))
