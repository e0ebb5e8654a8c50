#!/usr/bin/env bash
# The main job: a real pot with a real workload on the embedded defaults, then a clean machine.
# It runs inside a network namespace made to play the host (this machine's own keeps ip_forward=0
# and is shared): busybox httpd serves a page on the public bridge with port 80 exported as 8080;
# the host fetches it on 127.0.0.1:8080, another pot fetches it by name; the monitor that owns the
# pot is killed and the pot goes on serving; a one-off pot returns its exit code. Then an image:
# built from a Containerfile, pushed to a local docker-registry, removed, pulled back and run with
# its exposed port published; the host fetches its page through it.
set -euo pipefail
LADLE=${1:-ladle}
if [ -z "${LADLE_MAIN_NETNS:-}" ]; then
    ns=ladle-main-$$
    ip netns add "$ns"
    trap 'ip netns delete "$ns"' EXIT
    # nsenter, not `ip netns exec`, which remounts /sys and hides the cgroup mounts
    LADLE_MAIN_NETNS=$ns nsenter --net="/run/netns/$ns" bash "$0" "$LADLE"
    exit
fi
ip link set lo up
export LADLE_MONITOR_IDLE=2  # the monitor goes two seconds after the job instead of a minute
root=$(mktemp -d /tmp/ladle-main.XXXXXX)
page=$(mktemp -d /tmp/ladle-page.XXXXXX)
regdir=$(mktemp -d /tmp/ladle-registry.XXXXXX)
regpid=
l() { echo "+ ladle $*" >&2; "$LADLE" --root "$root" "$@"; }
fetch() { python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())" "$1"; }

cleanup() {
    for pot in web site; do
        "$LADLE" --root "$root" destroy -p "$pot" -F >/dev/null 2>&1 || true
    done
    [ -z "$regpid" ] || kill "$regpid" 2>/dev/null || true
    rm -rf "$root" "$page" "$regdir"
}
trap cleanup EXIT

echo "<h1>Hello from a ladle pot</h1>" > "$page/index.html"

l init
l create-base -r busybox
l create -p web -b busybox -N public-bridge -c "httpd -f -v -p 80 -h /www"
l export-ports -p web -e 80:8080
l copy-in -p web -s "$page/index.html" -d /www/index.html -c
l start web

echo "+ fetch http://127.0.0.1:8080/ from the host" >&2
body=$(fetch http://127.0.0.1:8080/)
echo "$body"
grep -q "Hello from a ladle pot" <<<"$body"

echo "+ another pot fetches http://web/ by name" >&2
l run --rm -N public-bridge busybox -- sh -c "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web 80" | grep -q "Hello from a ladle pot"

l exec web -- ps

monitor=$("$LADLE" --root "$root" info web --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["run"]["monitor_pid"])')
echo "+ kill -9 $monitor (the monitor that owns the pot)" >&2
kill -9 "$monitor"
fetch http://127.0.0.1:8080/ >/dev/null
echo "+ the page is still served" >&2
l gc
l ls

set +e
l run --rm busybox -- sh -c 'echo "hello from a one-off pot"; exit 3'
code=$?
set -e
echo "+ the one-off pot exited with $code" >&2
[ "$code" = 3 ]

l logs web
l stop web
l last-run-stats -p web
l destroy -p web
l destroy -b busybox

echo "+ an image: a Containerfile built, pushed to a local registry, pulled back, run with its port published" >&2
cat > "$regdir/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $regdir/data}}
http: {addr: 127.0.0.1:5000}
EOF
docker-registry serve "$regdir/config.yml" >"$regdir/log" 2>&1 &
regpid=$!
for _ in $(seq 100); do fetch http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && break; sleep 0.1; done
mkdir "$regdir/context"
cp "$(command -v busybox)" "$regdir/context/busybox"
cp "$page/index.html" "$regdir/context/index.html"
cat > "$regdir/context/Containerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY index.html /www/index.html
EXPOSE 80
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
EOF
image=127.0.0.1:5000/demo/site:1
l build -t "$image" "$regdir/context"
l push -q "$image"
l rmi "$image"
l image prune --build-cache  # nothing of the image is left in the store: the pull brings it all back
l pull -q "$image"
l images
l run --rm -d -p site -N public-bridge -P "$image"
port=$("$LADLE" --root "$root" info -p site | awk '$1 == "export:" && $2 ~ /->80\/tcp$/ { split($2, a, "->"); print a[1] }')
echo "+ fetch http://127.0.0.1:$port/ from the host (the image's EXPOSE 80, published by -P)" >&2
fetch "http://127.0.0.1:$port/" | grep -q "Hello from a ladle pot"
l stop site
l ls
l rmi "$image"
l image prune
kill "$regpid"
regpid=

if grep -q "$root" /proc/self/mounts; then
    echo "main job: mounts left under $root" >&2
    exit 1
fi
if ip -o link | grep -E ' (ldv|ldbr)[0-9a-f]*[:@]'; then
    echo "main job: interfaces left behind" >&2
    exit 1
fi
if nft list tables | grep -q ladle; then
    echo "main job: nftables rules left behind" >&2
    exit 1
fi
echo "main job: OK (page served by a pot on the public bridge, fetched from the host through an exported port and by another pot by name; an image built, pushed, pulled and served through its published port; nothing left behind)"
