"""`ladle pull`, `push`, `login`, `images`, `rmi` and `image prune` against Debian's docker-registry,
with skopeo as the independent client: what skopeo pushes ladle pulls blob for blob, and what
ladle pushes skopeo reads back bit for bit. Registries that misbehave are small servers here."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LADLE, Ladle
from tests.registry_fixtures import (
    HOST_ARCH,
    Layout,
    Registry,
    TokenServer,
    body_of,
    free_port,
    reply,
    sha,
    skopeo,
)

FILES = [{"bin/hello": b"#!/bin/sh\necho hello\n" * 50, "etc/motd": b"layer one\n"}, {"etc/motd": b"layer two\n"}]


@pytest.fixture(autouse=True)
def auth_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own auth file and home: nothing of the machine's credentials is read."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    return tmp_path / "auth.json"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """gz: two gzip layers; zst: the same files as zstd; multi: an index of arm64, this host's and
    freebsd's images, this host's in the middle; one: a single-layer image."""
    lay = Layout(tmp_path_factory.mktemp("layout"))
    lay.tag("gz", lay.image(FILES))
    lay.tag("zst", lay.image(FILES, how="zstd"))
    other = "arm64" if HOST_ARCH != "arm64" else "amd64"
    lay.tag("multi", lay.index([lay.image([{"etc/arch": other.encode()}], arch=other),
                                lay.image([{"etc/arch": HOST_ARCH.encode()}]),
                                lay.image([{"etc/arch": b"freebsd"}], os_name="freebsd", arch="amd64")]))
    lay.tag("one", lay.image([{"etc/one": b"1\n" * 3000}]))
    return lay


def stored(cli: Ladle) -> set[str]:
    """The blobs in the content store, and anything else in its directory."""
    d = cli.root / "images" / "blobs" / "sha256"
    return {("sha256:" + n) if len(n) == 64 else n for n in os.listdir(d)} if d.exists() else set()


def images(cli: Ladle) -> list[dict[str, Any]]:
    return json.loads(cli("images", "--json").stdout)  # type: ignore[no-any-return]


def test_pull_by_tag_and_by_digest_stores_exactly_the_blobs(ladle: Ladle, registry: Registry, layout: Layout) -> None:
    registry.push(layout, "gz", "t/img:gz")
    digest = layout.refs["gz"]["digest"]
    assert sha(registry.raw("t/img:gz")) == digest
    out = ladle("pull", f"{registry.host}/t/img:gz")
    assert out.stdout == f"pulled {registry.host}/t/img:gz ({digest})\n"
    assert stored(ladle) == layout.closure(digest)
    for d in layout.closure(digest):
        assert (ladle.root / "images/blobs/sha256" / d[7:]).read_bytes() == layout.blobs[d]
    [row] = images(ladle)
    assert row["name"] == f"{registry.host}/t/img" and row["tag"] == "gz" and row["digest"] == digest
    assert row["created"] == "2026-01-01T00:00:00Z"
    assert row["size"] == sum(len(layout.blobs[d]) for d in layout.closure(digest))

    ladle("pull", f"{registry.host}/t/img@{digest}")
    rows = images(ladle)
    assert [(r["tag"], r["digest"]) for r in rows] == [("", digest), ("gz", digest)]
    assert stored(ladle) == layout.closure(digest)
    table = ladle("images").stdout.splitlines()
    assert table[0].split() == ["NAME", "TAG", "DIGEST", "SIZE", "CREATED"] and len(table) == 3

    assert ladle("rmi", f"{registry.host}/t/img:gz").stdout.startswith(f"removed {registry.host}/t/img:gz (0 blobs")
    assert stored(ladle) == layout.closure(digest)  # the digest's row still holds them
    assert ladle("rmi", digest).stdout == f"removed {registry.host}/t/img@{digest} (4 blobs freed)\n"
    assert stored(ladle) == set() and images(ladle) == []


def test_push_to_another_name_reads_back_bit_for_bit(ladle: Ladle, registry: Registry, registry2: Registry,
                                                     layout: Layout, tmp_path: Path) -> None:
    registry.push(layout, "gz", "t/src:1")
    digest = layout.refs["gz"]["digest"]
    ladle("pull", f"{registry.host}/t/src:1")
    # the same registry, another repository: the blobs are mounted, not uploaded
    assert ladle("push", f"{registry.host}/t/src:1", f"{registry.host}/t/copy:2").stdout == \
        f"pushed {registry.host}/t/copy:2 ({digest})\n"
    assert registry.raw("t/copy:2") == layout.blobs[digest]
    mounts = [line for line in registry.log() if "mount=" in line and "/v2/t/copy/blobs/uploads/" in line]
    assert len(mounts) == 3 and all('" 201 ' in line for line in mounts), mounts
    # another registry, in chunks of 100 bytes
    ladle("push", "--chunk-size", "100", f"{registry.host}/t/src:1", f"{registry2.host}/other/img:x")
    assert registry2.raw("other/img:x") == layout.blobs[digest]
    patches = [line for line in registry2.log() if '"PATCH /v2/other/img/blobs/uploads/' in line]
    assert len(patches) > 3
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry2.host}/other/img:x", f"oci:{tmp_path}/back:x")
    back = {"sha256:" + p.name: p.read_bytes() for p in (tmp_path / "back/blobs/sha256").iterdir()}
    assert back == {d: layout.blobs[d] for d in layout.closure(digest)}
    # a second push finds every blob there and sends only the manifest
    before = len(registry2.log())
    ladle("push", f"{registry.host}/t/src:1", f"{registry2.host}/other/img:y")
    new = registry2.log()[before:]
    assert not [line for line in new if '"POST ' in line or '"PATCH ' in line]
    assert registry2.raw("other/img:y") == layout.blobs[digest]


def test_an_index_gives_this_hosts_platform(ladle: Ladle, registry: Registry, layout: Layout) -> None:
    registry.push(layout, "multi", "t/multi:1", "--all")
    index = json.loads(layout.blobs[layout.refs["multi"]["digest"]])
    mine = next(m for m in index["manifests"] if m["platform"] == {"os": "linux", "architecture": HOST_ARCH})
    ladle("pull", f"{registry.host}/t/multi:1")
    [row] = images(ladle)
    assert row["digest"] == layout.refs["multi"]["digest"] and row["manifest"] == mine["digest"]
    assert stored(ladle) == layout.closure(mine["digest"]) | {row["digest"]}
    # pushing it sends this platform's image, as it is
    ladle("push", f"{registry.host}/t/multi:1", f"{registry.host}/t/mine:1")
    assert registry.raw("t/mine:1") == layout.blobs[mine["digest"]]


def test_gzip_and_zstd_layers_are_stored_as_they_are(ladle: Ladle, registry: Registry, layout: Layout) -> None:
    registry.push(layout, "zst", "t/zst:1")
    digest = layout.refs["zst"]["digest"]
    ladle("pull", f"{registry.host}/t/zst:1")
    layers = json.loads(layout.blobs[digest])["layers"]
    assert {x["mediaType"] for x in layers} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    for x in layers:
        data = (ladle.root / "images/blobs/sha256" / x["digest"][7:]).read_bytes()
        assert data[:4] == b"\x28\xb5\x2f\xfd" and sha(data) == x["digest"]
    assert stored(ladle) == layout.closure(digest)


def test_docker_schema2_images_pull_and_push_unchanged(ladle: Ladle, registry: Registry, layout: Layout) -> None:
    registry.push(layout, "one", "t/docker:1", "--format", "v2s2")
    raw = registry.raw("t/docker:1")
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    ladle("pull", f"{registry.host}/t/docker:1")
    assert images(ladle)[0]["digest"] == sha(raw)
    ladle("push", f"{registry.host}/t/docker:1", f"{registry.host}/t/docker2:1")
    assert registry.raw("t/docker2:1") == raw


def test_prune_removes_what_nothing_references(ladle: Ladle, registry: Registry, layout: Layout) -> None:
    registry.push(layout, "one", "t/prune:1")
    ladle("pull", f"{registry.host}/t/prune:1")
    blobs = ladle.root / "images/blobs/sha256"
    (blobs / ("0" * 64)).write_bytes(b"stray")  # a blob no image needs
    (blobs / ".partial-999999999-abc").write_bytes(b"half")  # a crashed pull's, its process gone
    mine = blobs / f".partial-{os.getpid()}-abc"  # a pull still running
    mine.write_bytes(b"coming")
    assert ladle("image", "prune").stdout == "removed 1 blobs nothing references\n"
    assert stored(ladle) == layout.closure(layout.refs["one"]["digest"]) | {mine.name}
    mine.unlink()


def test_pulls_share_the_store_and_prune_waits_for_them(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    """A slow pull holds the store shared: another pull goes ahead, a prune finds it busy (and so
    never removes the blobs the slow one has brought but not yet recorded)."""
    release = __import__("threading").Event()

    def slow(h: http.server.BaseHTTPRequestHandler, d: str) -> None:
        release.wait(30)
        reply(h, 200, layout.blobs[d])
    slow_host = fake_registry(_fake(layout, "gz", blob=slow))
    fast_host = fake_registry(_fake(layout, "one"))
    env = {**os.environ, "LADLE_LOCK_TIMEOUT": "0.5"}
    background = subprocess.Popen([*LADLE, "--root", str(ladle.root), "pull", f"{slow_host}/x/slow:gz"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 10
        while not (ladle.root / "locks/images.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        ladle("pull", f"{fast_host}/x/fast:one")
        prune = subprocess.run([*LADLE, "--root", str(ladle.root), "image", "prune"], capture_output=True, text=True,
                               env=env, timeout=30)
        assert prune.returncode == 1
        assert prune.stderr == "ladle: the image store is busy: another ladle command held it for 0.5s\n"
    finally:
        release.set()
        _, err = background.communicate(timeout=30)
    assert background.returncode == 0, err
    assert {(r["name"].split("/", 1)[1], r["tag"]) for r in images(ladle)} == {("x/slow", "gz"), ("x/fast", "one")}
    assert stored(ladle) == layout.closure(layout.refs["gz"]["digest"]) | layout.closure(layout.refs["one"]["digest"])


def test_a_pull_killed_midway_leaves_nothing_visible(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    """SIGKILL while a blob streams in: no blob, no image; only the dead pull's temporary file,
    which `gc` removes (and `image prune`: the same clean-up)."""
    import signal
    import threading

    layer = json.loads(layout.blobs[layout.refs["one"]["digest"]])["layers"][0]["digest"]
    streaming, release = threading.Event(), threading.Event()

    def stall(h: http.server.BaseHTTPRequestHandler, d: str) -> None:
        data = layout.blobs[d]
        if d != layer:
            reply(h, 200, data)
            return
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[:100])
        h.wfile.flush()
        streaming.set()
        release.wait(30)
    host = fake_registry(_fake(layout, "one", blob=stall))
    proc = subprocess.Popen([*LADLE, "--root", str(ladle.root), "pull", f"{host}/x/y:one"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert streaming.wait(20)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        release.set()
    partial = {n for n in stored(ladle) if not n.startswith("sha256:")}
    assert layer not in stored(ladle) and images(ladle) == []
    assert partial and all(n.startswith(f".partial-{proc.pid}-") for n in partial)
    assert ladle("gc").stdout == "removed 1 temporary file of interrupted image writes\n"
    assert not {n for n in stored(ladle) if not n.startswith("sha256:")}


def _login(cli: Ladle, host: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
    return cli("login", host, "-u", user, "--password-stdin", input=password + "\n", check=False)


def test_htpasswd_auth_takes_the_right_credentials_only(ladle: Ladle, htpasswd_registry: Registry, layout: Layout,
                                                        auth_env: Path) -> None:
    reg = htpasswd_registry
    reg.push(layout, "one", "h/img:1")
    assert ladle.fails("pull", f"{reg.host}/h/img:1") == \
        f"ladle: registry {reg.host} needs credentials: ladle login {reg.host}"
    wrong = _login(ladle, reg.host, "alice", "wrong")
    assert wrong.returncode == 1 and wrong.stderr.startswith(f"ladle: registry {reg.host}: GET /v2/: access denied")
    assert len(wrong.stderr.splitlines()) == 1 and not auth_env.exists()
    assert stored(ladle) == set()
    ok = _login(ladle, reg.host, "alice", "s3cret")
    assert ok.returncode == 0 and ok.stdout == f"logged in to {reg.host} (credentials in {auth_env})\n"
    assert json.loads(auth_env.read_text()) == {"auths": {reg.host: {"auth": "YWxpY2U6czNjcmV0"}}}
    assert oct(auth_env.stat().st_mode & 0o777) == "0o600"
    ladle("pull", f"{reg.host}/h/img:1")
    ladle("push", f"{reg.host}/h/img:1", f"{reg.host}/h/again:1")
    assert reg.raw("h/again:1") == layout.blobs[layout.refs["one"]["digest"]]


def test_docker_and_podman_auth_files_are_read(ladle: Ladle, htpasswd_registry: Registry, layout: Layout,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = htpasswd_registry
    reg.push(layout, "one", "h/files:1")
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    docker = tmp_path / "home/.docker/config.json"
    docker.parent.mkdir(parents=True)
    docker.write_text(json.dumps({"auths": {f"https://{reg.host}": {"auth": "YWxpY2U6czNjcmV0"}}}))
    ladle("pull", f"{reg.host}/h/files:1")
    # podman's file comes first, and a wrong password there is what counts
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run/containers").mkdir(parents=True)
    (tmp_path / "run/containers/auth.json").write_text(json.dumps({"auths": {reg.host: {"auth": "YWxpY2U6eA=="}}}))
    assert "access denied" in ladle.fails("pull", f"{reg.host}/h/files:1")


def test_token_auth_with_a_token_server(ladle: Ladle, token_registry: tuple[Registry, TokenServer],
                                        layout: Layout, auth_env: Path) -> None:
    reg, tokens = token_registry
    reg.push(layout, "gz", "tok/img:1")
    assert "the token server of" in ladle.fails("pull", f"{reg.host}/tok/img:1")
    assert "refused the credentials" in _login(ladle, reg.host, "alice", "nope").stderr
    assert not auth_env.exists()
    assert _login(ladle, reg.host, "alice", "s3cret").returncode == 0
    tokens.requests.clear()
    ladle("pull", f"{reg.host}/tok/img:1")
    ladle("push", f"{reg.host}/tok/img:1", f"{reg.host}/tok/pushed:1")
    assert reg.raw("tok/pushed:1") == layout.blobs[layout.refs["gz"]["digest"]]
    scopes = {s for r in tokens.requests for s in r["query"].get("scope", [])}
    assert {"repository:tok/img:pull", "repository:tok/pushed:pull,push"} <= scopes, scopes
    assert all(r["query"]["service"] == ["test-registry"] and r["query"]["account"] == ["alice"]
               for r in tokens.requests)


# Registries that misbehave ---------------------------------------------------------------------

def _fake(layout: Layout, tag: str, *, blob: Callable[[http.server.BaseHTTPRequestHandler, str], None] | None = None,
          manifest: Callable[[http.server.BaseHTTPRequestHandler], None] | None = None,
          ) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    """A registry serving the layout's image `tag`, with a blob or manifest handler that lies."""
    desc = layout.refs[tag]

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path == "/v2/":
            reply(h, 200, b"{}")
        elif "/manifests/" in h.path:
            if manifest:
                manifest(h)
            else:
                reply(h, 200, layout.blobs[desc["digest"]], {"Content-Type": desc["mediaType"]})
        elif "/blobs/" in h.path:
            d = h.path.rsplit("/", 1)[1]
            if blob:
                blob(h, d)
            else:
                reply(h, 200, layout.blobs[d])
        else:
            reply(h, 404)
    return handle


def _fails_cleanly(cli: Ladle, *args: str, says: str, within: float = 10) -> None:
    start = time.monotonic()
    line = cli.fails(*args)
    assert time.monotonic() - start < within
    assert says in line, line
    assert {n for n in stored(cli) if not n.startswith("sha256:")} == set(), "a temporary file was left"
    assert stored(cli) == set() and images(cli) == []


def test_a_blob_with_the_wrong_digest_is_refused(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    config = json.loads(layout.blobs[layout.refs["gz"]["digest"]])["config"]["digest"]

    def lying(h: http.server.BaseHTTPRequestHandler, d: str) -> None:
        data = layout.blobs[d]
        reply(h, 200, data[:-1] + b"X" if d != config else data)
    host = fake_registry(_fake(layout, "gz", blob=lying))
    _fails_cleanly(ladle, "pull", f"{host}/x/y:gz", says="has digest sha256:")


def test_a_truncated_download_is_refused(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    layer = json.loads(layout.blobs[layout.refs["gz"]["digest"]])["layers"][0]["digest"]

    def cut(h: http.server.BaseHTTPRequestHandler, d: str) -> None:
        data = layout.blobs[d]
        if d == layer:
            reply(h, 200, data[: len(data) // 2], length=len(data))
            h.close_connection = True
        else:
            reply(h, 200, data)
    host = fake_registry(_fake(layout, "gz", blob=cut))
    _fails_cleanly(ladle, "pull", f"{host}/x/y:gz", says="was cut short")


def test_a_short_blob_is_refused(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    def short(h: http.server.BaseHTTPRequestHandler, d: str) -> None:
        reply(h, 200, layout.blobs[d][:-5])
    host = fake_registry(_fake(layout, "gz", blob=short))
    _fails_cleanly(ladle, "pull", f"{host}/x/y:gz", says="ended after")


def test_a_manifest_of_an_unknown_media_type_is_refused(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    def odd(h: http.server.BaseHTTPRequestHandler) -> None:
        body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"}).encode()
        reply(h, 200, body, {"Content-Type": "application/vnd.example.thing+json"})
    host = fake_registry(_fake(layout, "gz", manifest=odd))
    _fails_cleanly(ladle, "pull", f"{host}/x/y:gz", says="unsupported media type 'application/vnd.example.thing+json'")


def test_schema1_manifests_are_refused(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    def old(h: http.server.BaseHTTPRequestHandler) -> None:
        reply(h, 200, b'{"schemaVersion":1,"name":"x/y","tag":"gz","fsLayers":[]}',
              {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"})
    host = fake_registry(_fake(layout, "gz", manifest=old))
    _fails_cleanly(ladle, "pull", f"{host}/x/y:gz", says="unsupported media type")


def test_a_manifest_not_matching_its_digest_is_refused(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    host = fake_registry(_fake(layout, "gz"))
    other = layout.refs["zst"]["digest"]
    _fails_cleanly(ladle, "pull", f"{host}/x/y@{other}", says="refused")


def test_an_unreachable_registry_answers_within_seconds(ladle: Ladle) -> None:
    port = free_port()  # nothing listens there
    _fails_cleanly(ladle, "pull", f"127.0.0.1:{port}/x/y:1", says=f"cannot reach registry 127.0.0.1:{port}",
                   within=3)


def test_tls_is_verified_unless_insecure(ladle: Ladle, layout: Layout, fake_registry: Any, tmp_path: Path) -> None:
    """A registry with a self-signed certificate: refused (even on loopback, where the plain-HTTP
    fallback fails too), taken with --insecure, and then spoken to over HTTPS."""
    host = fake_registry(_fake(layout, "one"), tls=tmp_path / "tls")
    line = ladle.fails("pull", f"{host}/x/y:one")
    assert f"cannot reach registry {host}: https: " in line and "CERTIFICATE_VERIFY_FAILED" in line
    assert stored(ladle) == set()
    ladle("pull", "--insecure", f"{host}/x/y:one")
    assert stored(ladle) == layout.closure(layout.refs["one"]["digest"])


@pytest.mark.parametrize("how", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_a_ca_the_operator_trusts_is_taken(ladle: Ladle, layout: Layout, fake_registry: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The trust store is OpenSSL's (as Docker's and Podman's is the system's): a registry whose
    certificate is in $SSL_CERT_FILE, or under its subject hash in $SSL_CERT_DIR, is spoken to over
    verified HTTPS without --insecure."""
    host = fake_registry(_fake(layout, "one"), tls=tmp_path / "tls")
    cert = tmp_path / "tls" / "cert.pem"
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if how == "SSL_CERT_FILE":
        monkeypatch.setenv(how, str(cert))
    else:
        hashed = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(cert)], check=True,
                                capture_output=True, text=True).stdout.strip()
        (tmp_path / "cas").mkdir()
        (tmp_path / "cas" / f"{hashed}.0").write_bytes(cert.read_bytes())
        monkeypatch.setenv(how, str(tmp_path / "cas"))
    ladle("pull", f"{host}/x/y:one")
    assert stored(ladle) == layout.closure(layout.refs["one"]["digest"])


def test_server_errors_are_retried(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    fails = {"left": 2}

    def flaky(h: http.server.BaseHTTPRequestHandler, d: str) -> None:
        if fails["left"]:
            fails["left"] -= 1
            reply(h, 503, b"busy")
        else:
            reply(h, 200, layout.blobs[d])
    host = fake_registry(_fake(layout, "one", blob=flaky))
    ladle("pull", "-q", f"{host}/x/y:one")
    assert stored(ladle) == layout.closure(layout.refs["one"]["digest"])


def test_dropped_connections_are_retried(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    """One blob's connection is closed before any answer, another's halfway through its body."""
    digest = layout.refs["gz"]["digest"]
    first, second = (d["digest"] for d in json.loads(layout.blobs[digest])["layers"])
    dropped: set[str] = set()

    def flaky(h: http.server.BaseHTTPRequestHandler, d: str) -> None:
        data = layout.blobs[d]
        if d in (first, second) and d not in dropped:
            dropped.add(d)
            if d == first:
                h.close_connection = True
                return  # no answer at all
            reply(h, 200, data[: len(data) // 2], length=len(data))
            h.close_connection = True
        else:
            reply(h, 200, data)
    host = fake_registry(_fake(layout, "gz", blob=flaky))
    ladle("pull", f"{host}/x/y:gz")
    assert dropped == {first, second}
    assert stored(ladle) == layout.closure(digest)


def _on_a_terminal(cli: Ladle, *args: str) -> bytes:
    """Run ladle with a pseudo-terminal as stderr; return what it wrote there."""
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([*LADLE, "--root", str(cli.root), *args], stdout=subprocess.PIPE, stderr=follower,
                              stdin=subprocess.DEVNULL, timeout=60, env={**os.environ, "COLUMNS": "100"})
        os.close(follower)
        follower = -1
        out = b""
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        assert proc.returncode == 0, out
        return out
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)


def test_progress_bars_on_a_terminal_only(ladle: Ladle, layout: Layout, fake_registry: Any) -> None:
    layer = json.loads(layout.blobs[layout.refs["one"]["digest"]])["layers"][0]["digest"]

    def slow(h: http.server.BaseHTTPRequestHandler, d: str) -> None:
        data = layout.blobs[d]
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for i in range(0, len(data), max(1, len(data) // 4)):
            h.wfile.write(data[i:i + max(1, len(data) // 4)])
            h.wfile.flush()
            time.sleep(0.3 if d == layer else 0)
    host = fake_registry(_fake(layout, "one", blob=slow))
    shown = _on_a_terminal(ladle, "pull", f"{host}/x/y:one")
    assert layer[7:19].encode() in shown and b"\x1b[" in shown
    ladle("rmi", f"{host}/x/y:one")
    quiet = _on_a_terminal(ladle, "pull", "-q", f"{host}/x/y:one")
    assert quiet == b""
    ladle("rmi", f"{host}/x/y:one")
    piped = ladle("pull", f"{host}/x/y:one")  # stderr is a pipe: no bars
    assert piped.stderr == ""


def test_a_push_the_registry_refuses_is_one_line(ladle: Ladle, registry: Registry, layout: Layout,
                                                 fake_registry: Any) -> None:
    registry.push(layout, "one", "t/refuse:1")
    ladle("pull", f"{registry.host}/t/refuse:1")

    def deny(h: http.server.BaseHTTPRequestHandler) -> None:
        body_of(h)
        if h.command == "POST":
            reply(h, 403, b'{"errors":[{"code":"DENIED","message":"no pushing here"}]}')
        else:
            reply(h, 200 if h.path == "/v2/" else 404)
    host = fake_registry(deny)
    line = ladle.fails("push", f"{registry.host}/t/refuse:1", f"{host}/t/x:1")
    assert "access denied: DENIED: no pushing here" in line


@pytest.mark.parametrize("argv", [["ls"], ["images"], ["rmi", "127.0.0.1:1/x:1"], ["image", "prune"],
                                  ["tag", "127.0.0.1:1/x:1", "y:1"], ["load", "-i", "/nonexistent.tar"],
                                  ["save", "127.0.0.1:1/x:1", "-o", "/nonexistent/x"]])
def test_only_the_commands_that_talk_to_registries_import_httpx(ladle: Ladle, argv: list[str]) -> None:
    code = ("import sys; from ladle.cli import main; main(sys.argv[1:]); "
            "print([m for m in ('httpx', 'rich', 'ladle.images.registry') if m in sys.modules], file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, "--root", str(ladle.root), *argv], capture_output=True,
                          text=True, timeout=30)
    assert proc.stderr.splitlines()[-1] == "[]"


def test_a_migrated_database_gets_the_image_table(tmp_path: Path) -> None:
    from ladle.state.store import Store
    from tests.test_store import older

    store = Store(older(tmp_path, 5))
    try:
        assert store.all("images") == []
    finally:
        store.close()
