#!/usr/bin/env bash
# The main job: a real pot with a real workload on the embedded defaults, then a clean machine.
# busybox httpd serves a page on the host's network (inherit); the host fetches it; the monitor that
# owns the pot is killed and the pot goes on serving; a one-off pot returns its exit code.
set -euo pipefail
LADLE=${1:-ladle}
export LADLE_MONITOR_IDLE=2  # the monitor goes two seconds after the job instead of a minute
root=$(mktemp -d /tmp/ladle-main.XXXXXX)
page=$(mktemp -d /tmp/ladle-page.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
l() { echo "+ ladle $*" >&2; "$LADLE" --root "$root" "$@"; }

cleanup() {
    "$LADLE" --root "$root" stop web >/dev/null 2>&1 || true
    "$LADLE" --root "$root" destroy -p web -F >/dev/null 2>&1 || true
    rm -rf "$root" "$page"
}
trap cleanup EXIT

echo "<h1>Hello from a ladle pot</h1>" > "$page/index.html"

l init
l create-base -r busybox
l create -p web -b busybox -N inherit -c "httpd -f -v -p 127.0.0.1:$port -h /www"
l copy-in -p web -s "$page/index.html" -d /www/index.html -c
l start web

echo "+ fetch http://127.0.0.1:$port/ from the host" >&2
body=$(python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())" \
       "http://127.0.0.1:$port/")
echo "$body"
grep -q "Hello from a ladle pot" <<<"$body"

l exec web -- ps

monitor=$("$LADLE" --root "$root" info web --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["run"]["monitor_pid"])')
echo "+ kill -9 $monitor (the monitor that owns the pot)" >&2
kill -9 "$monitor"
python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10).read()" "http://127.0.0.1:$port/"
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
echo "main job: OK (page served by a pot and fetched from the host; nothing left behind)"
