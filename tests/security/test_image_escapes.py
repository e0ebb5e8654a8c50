"""Escape probes for the image store and the registry client: a reference, a manifest or a
registry that tries to make ladle write outside `<root>/images/blobs`, write through a planted
auth-file link, hang on a FIFO, leak credentials to another host or to a TLS server that does not
verify, or fall back to plain HTTP on a host that is not loopback. Each must be refused in one
line, with nothing written anywhere."""

from __future__ import annotations

import base64
import http.server
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ladle
from tests.registry_fixtures import Layout, Registry, reply

UNROUTABLE = "203.0.113.7"  # TEST-NET-3: connecting would hang until the timeout


@pytest.fixture(autouse=True)
def auth_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    return tmp_path / "auth.json"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    lay = Layout(tmp_path_factory.mktemp("layout"))
    lay.tag("one", lay.image([{"etc/one": b"one\n"}]))
    return lay


def tree(top: Path) -> set[str]:
    """Every path under `top` but lock files (one per lock taken, kept by design)."""
    return {str(p.relative_to(top)) for p in top.rglob("*") if p.parent.name != "locks"}


def _manifest_naming(digest: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest,
                                  "size": 5}, "layers": []}).encode()


@pytest.mark.parametrize("ref", ["127.0.0.1:1/x@sha256:../../x", "127.0.0.1:1/x@sha256:/etc/passwd",
                                 "127.0.0.1:1/x@sha256:" + "A" * 64, "127.0.0.1:1/../../x:1"])
def test_a_reference_cannot_name_a_path(ladle: Ladle, tmp_path: Path, ref: str) -> None:
    before = tree(tmp_path)
    for verb in ("pull", "push", "rmi"):
        line = ladle.fails(verb, ref)
        assert "invalid" in line, line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("digest", ["sha256:../../../../{victim}", "sha256:/{victim}", "sha256:" + "0" * 63 + "/",
                                    "sha512:" + "0" * 128])
def test_a_manifest_cannot_name_a_blob_outside_the_store(ladle: Ladle, tmp_path: Path, fake_registry: Any,
                                                         digest: str) -> None:
    victim = tmp_path / "victim"
    digest = digest.format(victim=str(victim).lstrip("/"))
    body = _manifest_naming(digest)

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        if "/manifests/" in h.path:
            reply(h, 200, body, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        elif "/blobs/" in h.path:
            reply(h, 200, b"owned")
        else:
            reply(h, 200, b"{}")
    host = fake_registry(handle)
    before = tree(tmp_path)
    assert "names a blob by an invalid digest" in ladle.fails("pull", f"{host}/x/y:1")
    assert not victim.exists() and tree(tmp_path) == before


def test_an_index_cannot_name_a_manifest_outside_the_store(ladle: Ladle, tmp_path: Path, fake_registry: Any) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:../../../victim", "size": 5,
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        reply(h, 200, body, {"Content-Type": "application/vnd.oci.image.index.v1+json"})
    host = fake_registry(handle)
    before = tree(tmp_path)
    assert "invalid digest" in ladle.fails("pull", f"{host}/x/y:1")
    assert tree(tmp_path) == before


def test_login_does_not_write_through_a_planted_link(ladle: Ladle, htpasswd_registry: Registry, tmp_path: Path,
                                                     auth_env: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    auth_env.symlink_to(victim)
    proc = ladle("login", htpasswd_registry.host, "-u", "alice", "--password-stdin", input="s3cret\n", check=False)
    assert proc.returncode != 0 and "is a symbolic link: not writing through it" in proc.stderr
    assert victim.read_text() == "precious\n" and auth_env.is_symlink()


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "huge"])
def test_an_auth_file_that_is_not_a_file_is_refused_at_once(ladle: Ladle, tmp_path: Path, auth_env: Path,
                                                            kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(auth_env)  # opening it for reading would block until a writer comes
    elif kind == "device":
        auth_env.symlink_to("/dev/zero")
    elif kind == "directory":
        auth_env.mkdir()
    else:
        auth_env.write_bytes(b" " * (2 << 20))
    start = time.monotonic()
    line = ladle.fails("pull", "127.0.0.1:1/x:1")
    assert time.monotonic() - start < 5
    assert line.startswith("ladle: auth file ") and ("not a regular file" in line or "cannot read" in line), line


def _redirecting(target: str, status: int = 307) -> Any:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        if "/blobs/" in h.path and h.command == "GET":
            reply(h, status, b"", {"Location": target + h.path})
        elif "/manifests/" in h.path:
            reply(h, 200, _manifest_naming("sha256:" + "1" * 64),
                  {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        else:
            reply(h, 200, b"{}")
    return handle


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_to_plain_http_elsewhere_is_refused(ladle: Ladle, fake_registry: Any, status: int) -> None:
    host = fake_registry(_redirecting(f"http://{UNROUTABLE}", status))
    start = time.monotonic()
    line = ladle.fails("pull", f"{host}/x/y:1")
    assert time.monotonic() - start < 3, "it tried to connect"
    assert f"sent ladle to 'http://{UNROUTABLE}/v2/x/y/blobs/" in line and "refused (plain HTTP only" in line
    assert not (ladle.root / "images/blobs/sha256").exists() or not os.listdir(ladle.root / "images/blobs/sha256")


def test_a_token_realm_on_plain_http_elsewhere_is_refused(ladle: Ladle, fake_registry: Any) -> None:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        reply(h, 401, b"", {"WWW-Authenticate": f'Bearer realm="http://{UNROUTABLE}/token",service="x"'})
    host = fake_registry(handle)
    start = time.monotonic()
    assert f"sent ladle to 'http://{UNROUTABLE}/token'" in ladle.fails("pull", f"{host}/x/y:1")
    assert time.monotonic() - start < 3


def test_an_upload_location_on_plain_http_elsewhere_is_refused(ladle: Ladle, registry: Registry, layout: Layout,
                                                              fake_registry: Any) -> None:
    registry.push(layout, "one", "sec/up:1")
    ladle("pull", f"{registry.host}/sec/up:1")

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.command == "POST":
            reply(h, 202, b"", {"Location": f"http://{UNROUTABLE}/upload"})
        else:
            reply(h, 404 if "/blobs/" in h.path else 200, b"")
    host = fake_registry(handle)
    start = time.monotonic()
    assert f"sent ladle to 'http://{UNROUTABLE}/upload'" in ladle.fails("push", f"{registry.host}/sec/up:1",
                                                                       f"{host}/x/y:1")
    assert time.monotonic() - start < 3


def test_credentials_never_follow_a_redirect_to_another_host(ladle: Ladle, layout: Layout, fake_registry: Any,
                                                             auth_env: Path) -> None:
    """127.0.0.2 is loopback too (plain HTTP is fine), but it is not the registry: no Authorization."""
    desc = layout.refs["one"]
    seen: list[str | None] = []

    def cdn(h: http.server.BaseHTTPRequestHandler) -> None:
        seen.append(h.headers.get("Authorization"))
        reply(h, 200, layout.blobs[h.path.rsplit("/", 1)[1]])
    other = fake_registry(cdn, host="127.0.0.2")
    basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()

    def registry(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") != basic:
            reply(h, 401, b"", {"WWW-Authenticate": 'Basic realm="test"'})
        elif "/manifests/" in h.path:
            reply(h, 200, layout.blobs[desc["digest"]], {"Content-Type": desc["mediaType"]})
        else:
            reply(h, 307, b"", {"Location": f"http://{other}{h.path}"})
    host = fake_registry(registry)
    auth_env.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
    ladle("pull", f"{host}/x/y:1")
    assert seen and seen == [None] * len(seen)


def test_credentials_never_go_to_an_unverified_tls_server(ladle: Ladle, layout: Layout, fake_registry: Any,
                                                          auth_env: Path, tmp_path: Path) -> None:
    """A loopback registry is first asked over TLS without verification (to tell it from a
    plain-HTTP one): that request, and any other, must carry no credentials to a server whose
    certificate does not verify. The pull is refused and the server never saw an Authorization."""
    seen: list[str | None] = []

    def registry(h: http.server.BaseHTTPRequestHandler) -> None:
        seen.append(h.headers.get("Authorization"))
        reply(h, 401, b"", {"WWW-Authenticate": 'Basic realm="test"'})
    host = fake_registry(registry, tls=tmp_path / "tls")
    auth_env.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
    assert "CERTIFICATE_VERIFY_FAILED" in ladle.fails("pull", f"{host}/x/y:1")
    assert seen and seen == [None] * len(seen)


def test_a_registrys_error_text_cannot_forge_lines(ladle: Ladle, fake_registry: Any) -> None:
    evil = json.dumps({"errors": [{"code": "DENIED", "message": "no\n\x1b[2Kladle: all fine\r"}]}).encode()

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        reply(h, 200 if h.path == "/v2/" else 403, b"{}" if h.path == "/v2/" else evil)
    host = fake_registry(handle)
    line = ladle.fails("pull", f"{host}/x/y:1")
    assert "\x1b" not in line and "\r" not in line and "DENIED" in line
