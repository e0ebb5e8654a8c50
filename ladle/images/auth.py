"""Credentials in the Docker/Podman auth files, `{"auths": {"HOST": {"auth": base64(user:pass)}}}`.

Read from the first that exists of $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json,
~/.config/containers/auth.json and ~/.docker/config.json (podman's and skopeo's order); `login`
writes the first of the first three that applies, atomically and readable by its owner only, and
never through a symbolic link (that could point the write anywhere on the host).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
from typing import Any

from ladle import files
from ladle.errors import UsageError
from ladle.names import host_path, short

MAX_FILE = 1 << 20


def read_paths() -> list[str]:
    paths = [_env_file()] if os.environ.get("REGISTRY_AUTH_FILE") else []
    if os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    home = os.path.expanduser("~")
    return [*paths, os.path.join(home, ".config", "containers", "auth.json"),
            os.path.join(home, ".docker", "config.json")]


def write_path() -> str:
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return _env_file()
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json")
    return os.path.join(os.path.expanduser("~"), ".config", "containers", "auth.json")


def _env_file() -> str:
    return host_path("REGISTRY_AUTH_FILE", os.environ["REGISTRY_AUTH_FILE"])


def _keys(registry: str) -> tuple[str, ...]:
    """How the files may name a registry: as host[:port], as a URL, Docker Hub by its old index."""
    keys: tuple[str, ...] = (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/")
    if registry == "docker.io":
        keys += ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io")
    return keys


def credentials(registry: str) -> tuple[str, str] | None:
    """The user and password for `registry`, from the first file that has them."""
    for path in read_paths():
        doc = _load(path)
        auths = doc.get("auths") if doc is not None else None
        if not isinstance(auths, dict):
            continue
        for key in _keys(registry):
            entry = auths.get(key)
            if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
                return _decode(entry["auth"], path, key)
    return None


def _decode(value: str, path: str, key: str) -> tuple[str, str]:
    try:
        user, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        user, colon, password = "", "", ""
    if not colon or not user:
        raise UsageError(f"auth file {short(path)} has a broken entry for {short(key)}")
    return user, password


def _load(path: str) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise UsageError(f"cannot read auth file {short(path)}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE:
            raise UsageError(f"auth file {short(path)} is not a regular file of at most 1 MiB")
        data = os.read(fd, MAX_FILE + 1)
    finally:
        os.close(fd)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"auth file {short(path)} is not JSON") from None
    if not isinstance(doc, dict):
        raise UsageError(f"auth file {short(path)} is not a JSON object")
    return doc


def store(registry: str, user: str, password: str) -> str:
    """Add or replace the credentials for `registry`; return the file's path."""
    path = write_path()
    if os.path.islink(path):
        raise UsageError(f"auth file {short(path)} is a symbolic link: not writing through it")
    doc = _load(path) or {}
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise UsageError(f"auth file {short(path)} has an 'auths' that is not an object")
    auths[registry] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with files.replacing(path, 0o600) as f:
        f.write(json.dumps(doc, indent=1).encode() + b"\n")
    return path


def check_user(user: str) -> str:
    if not user or ":" in user or not user.isprintable() or len(user) > 255:
        raise UsageError(f"invalid user name {short(user)} (printable, no ':')")
    return user


_PARAM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


def challenge(header: str) -> tuple[str, dict[str, str]]:
    """A WWW-Authenticate challenge (RFC 7235): its scheme, lower-cased, and its parameters."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m:
            break
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        pos = m.end()
    return scheme.lower(), params
