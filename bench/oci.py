"""What the image benchmarks share: a debootstrapped Debian tree, OCI layouts of it, a local
docker-registry, and timing of commands. The tree and layouts are made once and kept in
$BENCH_CACHE (/var/tmp/ladle-bench)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CACHE = os.environ.get("BENCH_CACHE", "/var/tmp/ladle-bench")
MIRROR = os.environ.get("BENCH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SPLIT = ["./usr/lib", "./usr/share", "./var"]  # one layer each; everything else is the last
LAYER = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip", "tar": "application/vnd.oci.image.layer.v1.tar"}
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise SystemExit(f"bench: {', '.join(missing)} not installed (make bench installs them)")


def rootfs() -> str:
    """The debootstrapped tree, made once."""
    tree = os.path.join(CACHE, "bookworm-minbase")
    if not os.path.exists(os.path.join(tree, ".complete")):
        shutil.rmtree(tree, ignore_errors=True)
        os.makedirs(tree)
        print(f"bench: debootstrap --variant=minbase bookworm {tree} (once)", file=sys.stderr)
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", tree, MIRROR], check=True,
                       stdout=subprocess.DEVNULL)
        open(os.path.join(tree, ".complete"), "w").close()
    return tree


def _put(layout: str, path: str) -> tuple[str, int]:
    """Move a file into the layout's blobs under its digest."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    size = os.path.getsize(path)
    os.replace(path, os.path.join(layout, "blobs", "sha256", digest[7:]))
    return digest, size


def _put_bytes(layout: str, data: bytes) -> tuple[str, int]:
    tmp = os.path.join(layout, "blobs", "tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    return _put(layout, tmp)


def layout(tree: str, how: str, split: list[str] = SPLIT, name: str = "layout") -> str:
    """An OCI layout of the tree (tag 'debian'), one layer per directory of `split` and one for
    the rest, made once."""
    out = os.path.join(CACHE, f"{name}-{how}")
    if os.path.exists(os.path.join(out, "index.json")):
        return out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    parts = [["--", p] for p in split] + [[*(f"--exclude={p}" for p in split), "--", "."]]
    layers, diff_ids = [], []
    for i, part in enumerate(parts):
        raw = os.path.join(out, "blobs", f"layer{i}.tar")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "--sort=name", "--exclude=./.complete", "-C", tree,
                        "-cf", raw, *part], check=True)
        diff_id, _ = _put(out, raw)
        blob = os.path.join(out, "blobs", "sha256", diff_id[7:])
        if how == "gzip":
            packed = os.path.join(out, "blobs", f"layer{i}.tar.gz")
            with open(blob, "rb") as src, open(packed, "wb") as dst:
                subprocess.run(["gzip", "-6", "-n", "-c"], stdin=src, stdout=dst, check=True)
            os.unlink(blob)
            digest, size = _put(out, packed)
        else:
            digest, size = diff_id, os.path.getsize(blob)
        layers.append({"mediaType": LAYER[how], "digest": digest, "size": size})
        diff_ids.append(diff_id)
    config = json.dumps({"created": "2026-12-01T00:00:00Z", "architecture": ARCH, "os": "linux",
                         "config": {"Cmd": ["/bin/bash"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}, separators=(",", ":")).encode()
    cdigest, csize = _put_bytes(out, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest,
                                      "size": csize}, "layers": layers}, separators=(",", ":")).encode()
    mdigest, msize = _put_bytes(out, manifest)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": "debian"}}]}, f)
    return out


def image_size(path: str) -> tuple[int, int]:
    """(compressed bytes of the image's blobs, the number of layers)."""
    with open(os.path.join(path, "index.json")) as f:
        mdigest = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(path, "blobs", "sha256", mdigest[7:])) as f:
        m = json.load(f)
    return sum(d["size"] for d in [m["config"], *m["layers"]]), len(m["layers"])


class LocalRegistry:
    """docker-registry on a free loopback port, its storage in a temporary directory."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="ladle-bench-registry.")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = os.path.join(self.dir, "config.yml")
        with open(conf, "w") as f:
            f.write(f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {self.dir}/data}}\n"
                    f"http:\n  addr: 127.0.0.1:{self.port}\n")
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(["docker-registry", "serve", conf], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("bench: docker-registry did not start") from None
                time.sleep(0.05)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# As installed, ladle runs from compiled bytecode: a PYTHONDONTWRITEBYTECODE=1 of the environment
# would have every run compile the modules changed since their .pyc was written.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed: {proc.stderr.decode().strip()}")
    return elapsed


