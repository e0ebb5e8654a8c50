"""A registry client (OCI distribution spec v1.1) on httpx: manifests and blobs, uploads, auth.

HTTPS with verified certificates; plain HTTP only for a loopback registry (as Docker allows) or
with `insecure`, and then only after HTTPS failed to connect. Redirects are followed by hand: an
Authorization header never goes to another host, and a redirect may not downgrade to plain HTTP
on a host that would not be allowed it. 5xx answers, 429 and dropped connections are retried with
backoff; a refused or unreachable host fails at once (connecting times out after CONNECT_TIMEOUT).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from ladle.errors import HostError, NotFound, UsageError
from ladle.images import auth
from ladle.images.media import ACCEPT, MAX_MANIFEST, _shown
from ladle.images.refs import api_host, is_loopback

if TYPE_CHECKING:
    import httpx

    from ladle.images.blobs import Writer

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
RETRIES = 3  # attempts after the first
BACKOFF = 0.5  # seconds before the first retry; doubled each time
MAX_REDIRECTS = 5
CHUNK = 1 << 20
# (done, total) of one blob, for a progress bar
Progress = Callable[[int, int], None]


class Denied(HostError):
    """The registry or its token server refused the credentials (or gave none enough rights)."""


class CutShort(HostError):
    """A download ended early (a reset, a closed connection): worth another try."""


class Registry:
    """One registry, as `ladle pull/push/login` talk to it."""

    def __init__(self, registry: str, *, insecure: bool = False,
                 creds: tuple[str, str] | None = None) -> None:
        # httpx imports its own command-line client (click, pygments, rich) whenever they are
        # installed: a fifth of a pull's start-up, for a program ladle never runs. Marking the
        # module absent makes httpx define its stub instead.
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
        import httpx

        from ladle.images import tls

        self.registry = registry
        self.host = api_host(registry)
        self.insecure = insecure
        self.plain_ok = insecure or is_loopback(self.host)
        self.creds = creds
        self.base: str | None = None  # https://host or http://host, once one answered
        self.timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        self.http = tls.client(self.timeout, insecure)
        self.challenge: tuple[str, dict[str, str]] | None = None
        self.tokens: dict[tuple[str, ...], str] = {}

    def close(self) -> None:
        self.http.close()

    # Requests ------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if self.base is None:
            self.base = self._probe()
        return self.base + path

    def _probe(self) -> str:
        """Find the scheme: HTTPS, or plain HTTP where that is allowed and HTTPS did not connect
        (tried first without verifying, so that a plain-HTTP registry costs no trust store)."""
        import httpx

        from ladle.images import tls

        schemes = ("https", "http") if self.plain_ok else ("https",)
        failed = []
        for scheme in schemes:
            if scheme == "https" and self.plain_ok and not self.insecure:
                no = tls.speaks_tls(f"https://{self.host}/v2/", self.timeout)
                if no is not None:
                    failed.append(f"https: {_reason(no)}")
                    continue
            try:
                self.http.get(f"{scheme}://{self.host}/v2/").close()
                return f"{scheme}://{self.host}"
            except httpx.TransportError as e:
                failed.append(f"{scheme}: {_reason(e)}")
        hint = "" if self.plain_ok else " (plain HTTP only with --insecure)"
        raise HostError(f"cannot reach registry {self.registry}: {'; '.join(failed)}{hint}")

    def request(self, method: str, path_or_url: str, *, scopes: tuple[str, ...] = (), headers: dict[str, str] | None
                = None, content: bytes | None = None, ok: tuple[int, ...] = (200,),
                stream: bool = False) -> httpx.Response:
        """One request, with auth, redirects and retries; an answer not in `ok` is an error
        (404 NotFound, 401/403 Denied), its body closed."""
        import httpx

        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        authed = False
        attempt = 0
        while True:
            try:
                resp = self._send(method, url, scopes, headers or {}, content, stream)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout) as e:
                if attempt >= RETRIES:
                    raise HostError(f"registry {self.registry}: {method} {_path(url)}: {_reason(e)}") from None
                attempt += 1
                time.sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            except httpx.TransportError as e:
                raise HostError(f"cannot reach registry {self.registry}: {_reason(e)}") from None
            if resp.status_code == 401 and not authed and "www-authenticate" in resp.headers:
                self.challenge = auth.challenge(resp.headers["www-authenticate"])
                self.tokens.clear()  # one that expired is refused: ask for another
                resp.close()
                authed = True
                if self.challenge[0] == "basic" and self.creds is None:
                    raise Denied(f"registry {self.registry} needs credentials: ladle login {self.registry}")
                continue
            if (resp.status_code >= 500 or resp.status_code == 429) and attempt < RETRIES:
                resp.close()
                attempt += 1
                time.sleep(_retry_after(resp) or BACKOFF * 2 ** (attempt - 1))
                continue
            if resp.status_code in ok:
                return resp
            if stream:
                resp.read()
            resp.close()
            raise self._error(method, url, resp)

    def _send(self, method: str, url: str, scopes: tuple[str, ...], headers: dict[str, str],
              content: bytes | None, stream: bool) -> httpx.Response:
        """Send, following redirects by hand; Authorization only to the registry's own host."""
        for _ in range(MAX_REDIRECTS + 1):
            own = urlsplit(url).netloc == urlsplit(self.base or url).netloc
            extra = self._authorization(scopes) if own else {}
            req = self.http.build_request(method, url, headers={**headers, **extra}, content=content)
            resp = self.http.send(req, stream=stream)
            if resp.status_code not in (301, 302, 303, 307, 308) or "location" not in resp.headers:
                return resp
            resp.close()
            target = urljoin(url, resp.headers["location"])
            self._allowed(target)
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method, content = "GET", None
            url = target
        raise HostError(f"registry {self.registry}: more than {MAX_REDIRECTS} redirects for {_path(url)}")

    def _allowed(self, url: str) -> None:
        """A URL the registry sends us to (a redirect, a token realm, an upload location)."""
        parts = urlsplit(url)
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and (self.insecure or (self.plain_ok and is_loopback(parts.hostname or ""))):
            return  # a remote registry may not send us to plain HTTP on this machine either
        raise HostError(f"registry {self.registry} sent ladle to {_shown(url)}: refused (plain HTTP only to "
                        "loopback hosts, or with --insecure)")

    def _error(self, method: str, url: str, resp: httpx.Response) -> HostError | NotFound:
        what = _registry_error(resp)
        where = f"registry {self.registry}: {method} {_path(url)}"
        if resp.status_code in (401, 403):
            return Denied(f"{where}: access denied{what}" + ("" if self.creds else
                                                              f" (ladle login {self.registry}?)"))
        if resp.status_code == 404:
            return NotFound(f"{where}: not found{what}")
        return HostError(f"{where}: HTTP {resp.status_code}{what}")

    # Auth ------------------------------------------------------------------------------------

    def _authorization(self, scopes: tuple[str, ...]) -> dict[str, str]:
        if self.challenge is None:
            return {}
        scheme, params = self.challenge
        if scheme == "basic":
            return {"Authorization": _basic(self.creds)} if self.creds else {}
        if scheme == "bearer":
            wanted = tuple(sorted({*scopes, *params.get("scope", "").split()} - {""}))
            if wanted not in self.tokens:
                self.tokens[wanted] = self._token(params, wanted)
            return {"Authorization": f"Bearer {self.tokens[wanted]}"}
        raise HostError(f"registry {self.registry} asks for {_shown(scheme)} authentication, which ladle lacks")

    def _token(self, params: dict[str, str], scopes: tuple[str, ...]) -> str:
        """A token from the challenge's realm (the distribution token protocol)."""
        import httpx

        realm = params.get("realm", "")
        if not realm:
            raise HostError(f"registry {self.registry} asks for a token without saying where from")
        self._allowed(realm)
        query: list[tuple[str, str]] = [("service", params["service"])] if "service" in params else []
        query += [("scope", s) for s in scopes]
        headers = {}
        if self.creds:
            query.append(("account", self.creds[0]))
            headers["Authorization"] = _basic(self.creds)
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        try:
            resp = self.http.get(url, headers=headers)
        except httpx.TransportError as e:
            raise HostError(f"cannot reach the token server of {self.registry}: {_reason(e)}") from None
        if resp.status_code in (401, 403):
            raise Denied(f"the token server of {self.registry} refused the credentials"
                         + ("" if self.creds else f" (ladle login {self.registry}?)"))
        if resp.status_code != 200:
            raise HostError(f"the token server of {self.registry} answered HTTP {resp.status_code}")
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or not token.isprintable():
            raise HostError(f"the token server of {self.registry} gave no token")
        return token

    def login(self) -> None:
        """Check the credentials: the registry's /v2/ (and its token server) must take them."""
        self.request("GET", "/v2/").close()

    # Pull ------------------------------------------------------------------------------------

    def manifest(self, repo: str, reference: str) -> tuple[bytes, str | None, str | None]:
        """(body, Content-Type, Docker-Content-Digest) of a manifest or index."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", scopes=(f"repository:{repo}:pull",),
                            headers={"Accept": ACCEPT}, stream=True)
        try:
            body = _read_limited(resp, MAX_MANIFEST, f"manifest {repo}:{reference}")
        finally:
            resp.close()
        return body, resp.headers.get("content-type"), resp.headers.get("docker-content-digest")

    def fetch(self, repo: str, digest: str, writer: Writer, progress: Progress | None) -> None:
        """Stream a blob into `writer` (which checks its size and digest)."""
        import httpx

        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=(f"repository:{repo}:pull",), stream=True)
        try:
            for data in resp.iter_bytes():  # as it arrives: re-chunking would copy every byte again
                writer.write(data)
                if progress:
                    progress(writer.written, writer.size)
        except (httpx.TransportError, httpx.StreamError) as e:
            raise CutShort(f"download of blob {digest} from {self.registry} was cut short: {_reason(e)}") from None
        finally:
            resp.close()

    # Push ------------------------------------------------------------------------------------

    def has_blob(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=_push(repo), ok=(200, 404))
        resp.close()
        return resp.status_code == 200

    def start_upload(self, repo: str, digest: str, mount_from: str | None) -> str | None:
        """Open an upload session and return its location; None when the blob was mounted from
        another repository of this registry instead (no upload needed)."""
        scopes = _push(repo) + ((f"repository:{mount_from}:pull",) if mount_from else ())
        query = "?" + urlencode({"mount": digest, "from": mount_from}) if mount_from else ""
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/{query}", scopes=scopes,
                            content=b"", ok=(201, 202))
        resp.close()
        if resp.status_code == 201 and mount_from:
            return None
        return self._location(resp)

    def _location(self, resp: httpx.Response) -> str:
        if "location" not in resp.headers:
            raise HostError(f"registry {self.registry} opened an upload without a Location")
        url = urljoin(str(resp.request.url), resp.headers["location"])
        self._allowed(url)
        return url

    def upload(self, repo: str, location: str, fd: int, size: int, digest: str, chunk: int,
               progress: Progress | None) -> None:
        """Send a blob from `fd`: in one PUT if it fits in `chunk` bytes (0: any size), else in
        PATCHes of `chunk` bytes and a closing PUT (each answer gives the next location)."""
        scopes = _push(repo)
        sep = "&" if "?" in location else "?"
        if not chunk or size <= chunk:
            data = _read_exactly(fd, 0, size)
            resp = self.request("PUT", f"{location}{sep}{urlencode({'digest': digest})}", scopes=scopes,
                                headers={"Content-Type": "application/octet-stream"}, content=data, ok=(201,))
            resp.close()
            if progress:
                progress(size, size)
            return
        offset = 0
        while offset < size:
            data = _read_exactly(fd, offset, min(chunk, size - offset))
            resp = self.request("PATCH", location, scopes=scopes, content=data, ok=(202,), headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(data) - 1}"})
            resp.close()
            location = self._location(resp)
            offset += len(data)
            if progress:
                progress(offset, size)
        sep = "&" if "?" in location else "?"
        resp = self.request("PUT", f"{location}{sep}{urlencode({'digest': digest})}", scopes=scopes, content=b"",
                            ok=(201,))
        resp.close()

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str | None:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{reference}", scopes=_push(repo), content=body,
                            headers={"Content-Type": media_type}, ok=(201,))
        resp.close()
        said = resp.headers.get("docker-content-digest")
        return str(said) if said else None


def _push(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:pull,push",)


def _basic(creds: tuple[str, str] | None) -> str:
    assert creds is not None
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def _read_limited(resp: httpx.Response, limit: int, what: str) -> bytes:
    import httpx

    out = bytearray()
    try:
        for data in resp.iter_bytes(CHUNK):
            out += data
            if len(out) > limit:
                raise HostError(f"{what} is larger than {limit >> 20} MiB: refused")
    except (httpx.TransportError, httpx.StreamError) as e:
        raise HostError(f"download of {what} was cut short: {_reason(e)}") from None
    return bytes(out)


def _read_exactly(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise HostError("a blob in the image store is shorter than its manifest says")
    return data


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    return min(float(value), 10.0) if value.isdigit() else None


def _registry_error(resp: httpx.Response) -> str:
    """The first error of a registry's JSON error body, as ': CODE: message'."""
    try:
        doc: Any = json.loads(resp.content[:65536])
        first = doc["errors"][0]
        return f": {_shown(str(first.get('code', '')))[1:-1]}: {_shown(str(first.get('message', '')))[1:-1]}"
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def _path(url: str) -> str:
    return _shown(urlsplit(url).path)[1:-1]


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return _shown(text.splitlines()[0] if text.splitlines() else text)[1:-1]


@contextmanager
def opened(registry: str, *, insecure: bool, creds: tuple[str, str] | None) -> Iterator[Registry]:
    reg = Registry(registry, insecure=insecure, creds=creds)
    try:
        yield reg
    finally:
        reg.close()


def check_chunk(value: int) -> int:
    if not 0 <= value <= 1 << 32:
        raise UsageError(f"--chunk-size takes 0 (one request) to 4 GiB, not {value}")
    return value
