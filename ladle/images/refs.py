"""Image references, `[host[:port]/]path[:tag][@sha256:hex]`, normalised as Docker does: a first
component is a registry host only if it has a '.' or ':' or is 'localhost'; else the image is on
docker.io, where a one-component path gets 'library/'."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ladle.errors import UsageError
from ladle.names import short

DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
DOCKER_HUB = "docker.io"
MAX_NAME = 255  # host[:port]/path, as most clients cap it


@dataclass(frozen=True)
class Ref:
    registry: str  # host[:port] as written ('docker.io' for Docker Hub)
    repository: str  # path on the registry
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What the registry's manifest endpoint takes: the digest wins over the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def check_digest(digest: str, what: str = "digest") -> str:
    """A sha256 digest in its only valid form (64 lower-case hex digits): it becomes a file name."""
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        if isinstance(digest, str) and ":" in digest and not digest.startswith("sha256:"):
            raise UsageError(f"unsupported {what} algorithm in {short(digest)} (ladle knows sha256)")
        raise UsageError(f"invalid {what} {short(str(digest))}: sha256: and 64 lower-case hex digits")
    return digest


def parse(text: str, *, default_tag: bool = True) -> Ref:
    """Parse and normalise an image reference; `default_tag` gives a bare name the tag 'latest'."""
    if not text:
        raise UsageError("image reference must not be empty")
    if len(text) > MAX_NAME + 200 or not text.isprintable() or any(c.isspace() for c in text):
        raise UsageError(f"invalid image reference {short(text)}")
    rest, _, digest = text.partition("@")
    if digest:
        check_digest(digest)
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, remainder
        if not _HOST.fullmatch(registry):
            raise UsageError(f"invalid registry host {short(registry)} in {short(text)}")
    else:
        registry, path = DOCKER_HUB, rest
    path, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if colon and not _TAG.fullmatch(tag):
        raise UsageError(f"invalid tag {short(tag)} in {short(text)}: letters, digits, '_', '.' and '-', "
                         "at most 128")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not path or not all(_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise UsageError(f"invalid repository {short(path)} in {short(text)}: lower-case letters and digits "
                         "separated by '.', '_', '-' or '/'")
    if len(f"{registry}/{path}") > MAX_NAME:
        raise UsageError(f"image name {short(text)} is too long (at most {MAX_NAME} characters)")
    return Ref(registry, path, tag or ("latest" if default_tag and not digest else None), digest or None)


def registry_host(text: str) -> str:
    """A registry as `ladle login` takes it: host[:port], with an optional https:// or http://."""
    host = text.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not host or not _HOST.fullmatch(host):
        raise UsageError(f"invalid registry {short(text)}: host[:port]")
    return host


def hostname(registry: str) -> str:
    """The host of host[:port], without brackets."""
    if registry.startswith("["):
        return registry[1:registry.index("]")]
    return registry.rsplit(":", 1)[0] if ":" in registry else registry


def is_loopback(registry: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: where Docker allows plain HTTP without being told."""
    host = hostname(registry).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_host(registry: str) -> str:
    """Where the registry's API is: Docker Hub's is not at docker.io."""
    return "registry-1.docker.io" if registry == DOCKER_HUB else registry
