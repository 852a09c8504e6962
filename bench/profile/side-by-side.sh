#!/bin/bash
# Side-by-side CPU profiles of the bare Node reference and session-proxy
# (--log-level warn, fixed cookie), each under the same wrk load on the
# bench's nginx upstream, then the time per request by cause
# (bench/profile/causes.mjs). Needs nginx and wrk; run after `npm run build`.
#   bench/profile/side-by-side.sh [SECONDS] [OTHER_DIST]   (OTHER_DIST: a second build to compare, e.g. main's dist)
set -u
cd "$(dirname "$0")/../.."
DUR=${1:-8}
OTHER=${2:-}
W=$(mktemp -d /tmp/sp-profile-XXXX)
UP=18480
sed -e "s#@DIR@#$W#g" -e "s#@PORT@#$UP#g" -e "s#@SEED@##" -e "s#@SEED_SMALL@##" bench/upstream/nginx.conf > "$W/nginx.conf"
nginx -p "$W/" -e "$W/error.log" -c "$W/nginx.conf" & NGINX=$!
trap 'kill $NGINX 2>/dev/null; wait $NGINX 2>/dev/null' EXIT
sleep 0.5

run () { # NAME PORT cmd...
  local name=$1 port=$2; shift 2
  mkdir -p "$W/$name"
  node --cpu-prof --cpu-prof-dir="$W/$name" "$@" > "$W/$name/out" 2>&1 & local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null -x "http://127.0.0.1:$port" "http://127.0.0.1:$UP/" && break; sleep 0.1; done
  wrk -t2 -c32 -d2s -s bench/wrk/bench.lua "http://127.0.0.1:$port" -- "127.0.0.1:$UP" / 1 0 > /dev/null
  local t0; t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  local reqs; reqs=$(wrk -t2 -c32 -d"${DUR}s" -s bench/wrk/bench.lua "http://127.0.0.1:$port" -- "127.0.0.1:$UP" / 1 0 | grep -o '"requests":[0-9]*' | cut -d: -f2)
  local t1; t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
  echo "== $name: $((reqs / DUR)) req/s, $(( (t1 - t0) * 10000 / reqs )) us CPU per request (under the profiler)"
  node bench/profile/causes.mjs "$W/$name"/*.cpuprofile "$reqs"
}
run bare 18481 bench/reference/bare-proxy.mjs 18481
run session-proxy 18482 dist/cli.js --host 127.0.0.1 --port 18482 --data-dir "$W/data" --log-level warn
if [ -n "$OTHER" ]; then run other 18483 "$OTHER/cli.js" --host 127.0.0.1 --port 18483 --data-dir "$W/data2" --log-level warn; fi
echo "profiles in $W"
