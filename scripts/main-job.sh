#!/usr/bin/env bash
# The main job: a real pot with a real workload on the embedded defaults, then a clean machine.
# It runs inside a network namespace made to play the host (this machine's own keeps ip_forward=0
# and is shared): busybox httpd serves a page on the public bridge with port 80 exported as 8080;
# the host fetches it on 127.0.0.1:8080, another pot fetches it by name; the monitor that owns the
# pot is killed and the pot goes on serving; a one-off pot returns its exit code.
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
l() { echo "+ ladle $*" >&2; "$LADLE" --root "$root" "$@"; }
fetch() { python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())" "$1"; }

cleanup() {
    "$LADLE" --root "$root" stop web >/dev/null 2>&1 || true
    "$LADLE" --root "$root" destroy -p web -F >/dev/null 2>&1 || true
    rm -rf "$root" "$page"
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
echo "main job: OK (page served by a pot on the public bridge, fetched from the host through an exported port and by another pot by name; nothing left behind)"
