"""TLS for the registry client: the system's trust store, read only when a connection needs it.

Certificates are verified against the system's trust store, as Docker and Podman verify them (so a
CA an operator adds with update-ca-certificates or certctl counts), with $SSL_CERT_FILE and
$SSL_CERT_DIR taking its place when set, and certifi's bundle only where the system has none.
Reading a whole bundle is about 30 ms, a tenth of a pull from a local registry, so the verified
context is made on the first HTTPS request: a pull from a plain-HTTP loopback registry reads no
certificate at all.
"""

from __future__ import annotations

import os
import re
import ssl

import httpx

_HASHED = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def context(insecure: bool) -> ssl.SSLContext:
    """TLS 1.2 or later; verified unless `insecure`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    paths = ssl.get_default_verify_paths()
    cafile, capath = os.environ.get(paths.openssl_cafile_env), os.environ.get(paths.openssl_capath_env)
    if cafile or capath:
        ctx.load_verify_locations(cafile=cafile or None, capath=capath or None)
    elif paths.capath and _hashed(paths.capath):  # looked up by subject hash as chains need them
        ctx.load_verify_locations(capath=paths.capath)
    elif paths.cafile and os.path.exists(paths.cafile):
        ctx.load_verify_locations(cafile=paths.cafile)
    else:
        import certifi
        ctx.load_verify_locations(cafile=certifi.where())
    return ctx


def _hashed(directory: str) -> bool:
    """Whether a directory holds certificates under their subject hashes (what OpenSSL looks up)."""
    try:
        return any(_HASHED.fullmatch(name) for name in os.listdir(directory))
    except OSError:
        return False


class Lazy(httpx.BaseTransport):
    """An HTTPS transport whose context is made when the first request goes out."""

    def __init__(self, insecure: bool) -> None:
        self.insecure = insecure
        self.inner: httpx.HTTPTransport | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.inner is None:
            self.inner = httpx.HTTPTransport(verify=context(self.insecure))
        return self.inner.handle_request(request)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def client(timeout: httpx.Timeout, insecure: bool) -> httpx.Client:
    """A client whose plain-HTTP requests never make a TLS context and whose HTTPS ones verify
    (unless `insecure`). Redirects are the caller's, and so is the environment: no proxy or
    certificate settings are taken from it but the two OpenSSL ones above."""
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, transport=Lazy(insecure),
                        mounts={"http://": httpx.HTTPTransport(verify=context(insecure=True))})


def speaks_tls(url: str, timeout: httpx.Timeout) -> httpx.TransportError | None:
    """None if the server at `url` (https://) completes a TLS handshake and answers, else why not.
    Unverified and without credentials: it only tells a plain-HTTP loopback registry from one
    with TLS, before the verified context is worth making."""
    with httpx.Client(timeout=timeout, trust_env=False, transport=httpx.HTTPTransport(
            verify=context(insecure=True))) as probe:
        try:
            probe.get(url).close()
            return None
        except httpx.TransportError as e:
            return e
