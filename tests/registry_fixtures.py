"""Real peers for the image tests: Debian's `docker-registry` on 127.0.0.1 (anonymous, htpasswd
or token auth), a token server that mints RS256 JWTs the registry verifies, OCI layouts written
here and pushed with `skopeo`, and a tiny HTTP server for registries that misbehave on purpose.

Every process started here is stopped by its PID; every server listens on loopback only."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip", "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
         "none": "application/vnd.oci.image.layer.v1.tar"}
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# OCI layouts ---------------------------------------------------------------------------------

def tar_of(files: dict[str, bytes]) -> bytes:
    """A layer's tar: the files (with their parent directories), owned by root, time 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        for d in dirs:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def compress(raw: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(raw, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
    return raw


@dataclass
class Layout:
    """An OCI image layout on disk, and what it holds."""

    path: Path
    blobs: dict[str, bytes] = field(default_factory=dict)
    refs: dict[str, dict[str, Any]] = field(default_factory=dict)  # ref.name -> descriptor in index.json

    def put(self, data: bytes) -> str:
        digest = sha(data)
        self.blobs[digest] = data
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return digest

    def image(self, layers: list[dict[str, bytes]], how: str = "gzip", os_name: str = "linux",
              arch: str = HOST_ARCH, cmd: str = "/bin/sh") -> dict[str, Any]:
        """Write an image (one layer per dict of files); return its manifest's descriptor."""
        descs, diff_ids = [], []
        for files in layers:
            raw = tar_of(files)
            blob = compress(raw, how)
            descs.append({"mediaType": LAYER[how], "digest": self.put(blob), "size": len(blob)})
            diff_ids.append(sha(raw))
        config = json.dumps({"created": "2026-01-01T00:00:00Z", "architecture": arch, "os": os_name,
                             "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}, separators=(",", ":")).encode()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "digest": self.put(config), "size": len(config)},
                               "layers": descs}, separators=(",", ":")).encode()
        return {"mediaType": OCI_MANIFEST, "digest": self.put(manifest), "size": len(manifest),
                "platform": {"architecture": arch, "os": os_name}}

    def index(self, manifests: list[dict[str, Any]]) -> dict[str, Any]:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests},
                          separators=(",", ":")).encode()
        return {"mediaType": OCI_INDEX, "digest": self.put(body), "size": len(body)}

    def tag(self, name: str, desc: dict[str, Any]) -> None:
        entry = {k: v for k, v in desc.items() if k != "platform"}
        self.refs[name] = {**entry, "annotations": {"org.opencontainers.image.ref.name": name}}
        (self.path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": list(self.refs.values())}))

    def closure(self, digest: str) -> set[str]:
        """A manifest's blobs: itself, its config and layers."""
        doc = json.loads(self.blobs[digest])
        return {digest, doc["config"]["digest"], *(d["digest"] for d in doc["layers"])}


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"skopeo {' '.join(args)}: {proc.stderr}"
    return proc


# The registry ----------------------------------------------------------------------------------

@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    dir: Path
    proc: subprocess.Popen[bytes]
    creds: str | None = None  # user:pass skopeo uses

    def push(self, layout: Layout, tag: str, dest: str, *args: str) -> None:
        creds = ("--dest-creds", self.creds) if self.creds else ()
        skopeo("copy", "--dest-tls-verify=false", *creds, *args, f"oci:{layout.path}:{tag}",
               f"docker://{self.host}/{dest}")

    def raw(self, ref: str) -> bytes:
        creds = ("--creds", self.creds) if self.creds else ()
        return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", *creds, f"docker://{self.host}/{ref}"],
                              capture_output=True, check=True, timeout=60).stdout

    def log(self) -> list[str]:
        """The access log's lines: 'ADDR - - [TIME] "METHOD PATH HTTP/1.1" STATUS ...'."""
        return [line for line in (self.dir / "registry.log").read_text().splitlines() if line.startswith("127.0.0.1 ")]


def start_registry(base: Path, auth: str = "") -> Iterator[Registry]:
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    (base / "data").mkdir(exist_ok=True)
    (base / "config.yml").write_text(f"""version: 0.1
log: {{level: info, accesslog: {{disabled: false}}}}
storage:
  filesystem: {{rootdirectory: {base}/data}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{port}
{auth}""")
    with open(base / "registry.log", "wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(base / "config.yml")], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (401 with auth)
            except OSError:
                assert proc.poll() is None, (base / "registry.log").read_text()
                assert time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}", base, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry, for the module."""
    yield from start_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def registry2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A second one: pushing there mounts nothing."""
    yield from start_registry(tmp_path_factory.mktemp("registry2"))


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    base = tmp_path_factory.mktemp("htregistry")
    subprocess.run(["htpasswd", "-Bbc", str(base / "htpasswd"), "alice", "s3cret"], check=True, capture_output=True)
    auth = f"auth:\n  htpasswd: {{realm: test, path: {base}/htpasswd}}\n"
    for reg in start_registry(base, auth):
        reg.creds = "alice:s3cret"
        yield reg


# Token auth ------------------------------------------------------------------------------------

class TokenServer:
    """The distribution token protocol's realm: alice/s3cret gets the actions she asks for,
    signed as an RS256 JWT with the certificate in its x5c header; anyone else gets 401."""

    def __init__(self, base: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        self.key, cert = certificate("ladle test token issuer")
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.bundle = base / "token.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict[str, Any]] = []
        self.server = serve(self._handle)
        self.realm = f"http://127.0.0.1:{self.server.server_port}/token"

    def _b64(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def mint(self, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        now = int(time.time())
        claims = {"iss": "ladle-test", "sub": "alice", "aud": "test-registry", "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing = f"{self._b64(json.dumps(header).encode())}.{self._b64(json.dumps(claims).encode())}"
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{self._b64(sig)}"

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(h.path).query)
        got = h.headers.get("Authorization", "")
        self.requests.append({"query": query, "authorization": got})
        if got != "Basic " + base64.b64encode(b"alice:s3cret").decode():
            reply(h, 401, b'{"details":"bad credentials"}')
            return
        access = []
        for scope in " ".join(query.get("scope", [])).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        reply(h, 200, json.dumps({"token": self.mint(access), "expires_in": 300}).encode(),
              {"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, TokenServer]]:
    base = tmp_path_factory.mktemp("tokregistry")
    tokens = TokenServer(base)
    auth = (f"auth:\n  token:\n    realm: {tokens.realm}\n    service: test-registry\n    issuer: ladle-test\n"
            f"    rootcertbundle: {tokens.bundle}\n")
    try:
        for reg in start_registry(base, auth):
            reg.creds = "alice:s3cret"
            yield reg, tokens
    finally:
        tokens.server.shutdown()
        tokens.server.server_close()


# A registry that misbehaves ---------------------------------------------------------------------

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


def reply(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
          headers: dict[str, str] | None = None, length: int | None = None) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def certificate(common_name: str, ip: str | None = None) -> tuple[Any, Any]:
    """An RSA key and a certificate signed by itself (a CA; for `ip`, if given)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return key, builder.sign(key, hashes.SHA256())


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for `host` (an IP address) and its key, as PEM files."""
    from cryptography.hazmat.primitives import serialization

    key, cert = certificate(host, host)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return directory / "cert.pem", directory / "key.pem"


def serve(handle: Handler, host: str = "127.0.0.1", tls: Path | None = None) -> http.server.ThreadingHTTPServer:
    """An HTTP server on `host` (a free port) whose every request goes to `handle`, in a thread;
    HTTPS with a self-signed certificate written to `tls`, if given."""

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            handle(self)

        do_HEAD = do_POST = do_PUT = do_PATCH = do_GET

    server = http.server.ThreadingHTTPServer((host, 0), H)
    server.daemon_threads = True
    if tls is not None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self_signed(tls, host))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def fake_registry() -> Iterator[Callable[..., str]]:
    """`fake(handle, host='127.0.0.1')` starts a server and returns its host:port; all are stopped
    after the test."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handle: Handler, host: str = "127.0.0.1", tls: Path | None = None) -> str:
        """`tls`: a directory to put a self-signed certificate in, served with TLS."""
        server = serve(handle, host, tls)
        servers.append(server)
        return f"{host}:{server.server_port}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def body_of(h: http.server.BaseHTTPRequestHandler) -> bytes:
    return h.rfile.read(int(h.headers.get("Content-Length") or 0))
