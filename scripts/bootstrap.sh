#!/usr/bin/env bash
# Install what ladle and its tests need on a fresh Debian machine, idempotently and quickly when
# everything is already there: Debian packages, a running zfs-fuse daemon, and the virtualenv.
# With --bench, also hyperfine and debootstrap for the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: ladle manages mounts, namespaces and ZFS: run as root" >&2
    exit 1
fi

packages=(zfs-fuse busybox-static catatonit iproute2 nftables util-linux libseccomp2)
# the escape probes in tests/security are a static C program built at test time
packages+=(gcc libc6-dev)
# the images tests: a real registry, skopeo as the independent client, htpasswd for Basic auth, zstd layers
packages+=(docker-registry skopeo apache2-utils zstd)
# podman pulls and runs what ladle commits and pushes (runc: crun refuses this hybrid cgroup layout)
packages+=(podman runc)
[ "${1:-}" = "--bench" ] && packages+=(hyperfine debootstrap)
python3 -m venv --help >/dev/null 2>&1 || packages+=(python3-venv)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# zfs-fuse is a user-space daemon; nothing starts it in a container, so we do.
if ! pgrep -x zfs-fuse >/dev/null; then
    zfs-fuse --no-kstat-mount
    for _ in $(seq 50); do zpool list >/dev/null 2>&1 && break; sleep 0.1; done
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: creating the virtualenv" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
    touch "$stamp"
fi
# Byte-compile ladle: with PYTHONDONTWRITEBYTECODE set (as on some CI machines) every command would
# otherwise compile its modules again, which costs more than the rest of `ladle ls`.
.venv/bin/python -m compileall -q ladle >/dev/null
