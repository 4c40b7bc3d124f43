#!/usr/bin/env bash
# bench.sh starts Herald (one router, one ingest, one or more gateways) on loopback and
# runs the load tool against it. `make bench` calls it; extra arguments go to heraldload.
#
#   scripts/bench.sh -conns 1000 -rate 5000 -duration 20s
#   GATEWAYS=3 scripts/bench.sh -conns 10000 -rate 0        # idle memory per connection
#   GATEWAYS=1 scripts/bench.sh -conns 19000 -rate 0 -procs 2 # past 20,000 open files: two load-tool processes
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=/dev/null
eval "$(scripts/deps.sh)"
GATEWAYS=${GATEWAYS:-1}
# PROCS sets GOMAXPROCS for each Herald process (not the load tool); empty leaves Go's
# default, the number of cores. SVC_ENV adds NAME=value pairs to their environment
# only (SVC_ENV="GOGC=400").
PROCS=${PROCS:-}
# shellcheck disable=SC2206 # SVC_ENV is a list of NAME=value pairs
svc_env=(env ${SVC_ENV:-})
[[ -n $PROCS ]] && svc_env+=("GOMAXPROCS=$PROCS")
# PIN=1 puts Herald, Redis and Postgres on CPU 1 and the load tool on CPU 0, so that
# the load tool's own work (encrypting, decrypting) does not count against Herald.
PIN=${PIN:-0}
LOGS=${HERALD_RUN_DIR:-/tmp/herald-run}/bench
mkdir -p "$LOGS"

db=herald_bench
psql -q "$HERALD_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
export HERALD_POSTGRES_URL="${HERALD_POSTGRES_URL/\/postgres\?//$db?}"
export HERALD_REDIS_PREFIX="bench$$:"
HERALD_TOKEN_KEYS=$(go run ./test/cmd/heraldctl token-key)
export HERALD_TOKEN_KEYS HERALD_LOG_LEVEL=${HERALD_LOG_LEVEL:-warn} HERALD_LOG_FORMAT=json
make -s build
go build -o bin/ ./test/cmd/heraldload

pids=()
stop() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	redis-cli -u "$HERALD_REDIS_URL" --scan --pattern "$HERALD_REDIS_PREFIX*" | xargs -r -n 500 redis-cli -u "$HERALD_REDIS_URL" unlink >/dev/null
}
trap stop EXIT

ready() {
	for _ in $(seq 200); do
		curl -fsS "http://$1/readyz" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "bench.sh: $1 not ready; logs in $LOGS" >&2
	exit 1
}

"${svc_env[@]}" bin/router -grpc-listen 127.0.0.1:18090 -admin-listen 127.0.0.1:18091 2>"$LOGS/router.log" &
pids+=($!)
pidlist="router=$!"
ready 127.0.0.1:18091
"${svc_env[@]}" bin/ingest -listen 127.0.0.1:18000 -admin-listen 127.0.0.1:18001 -router-addr 127.0.0.1:18090 2>"$LOGS/ingest.log" &
pids+=($!)
pidlist+=",ingest=$!"
ready 127.0.0.1:18001
gws=()
for i in $(seq 0 $((GATEWAYS - 1))); do
	"${svc_env[@]}" bin/gateway -listen "127.0.0.1:$((18100 + i))" -grpc-listen "127.0.0.1:$((18200 + i))" -admin-listen "127.0.0.1:$((18300 + i))" \
		-endpoint-url http://127.0.0.1:18000 2>"$LOGS/gateway$i.log" &
	pids+=($!)
	pidlist+=",gateway$i=$!"
	gws+=("ws://127.0.0.1:$((18100 + i))/")
	ready "127.0.0.1:$((18300 + i))"
done
pidlist+=",redis=$(redis-cli -u "$HERALD_REDIS_URL" info server | tr -d '\r' | sed -n 's/^process_id://p')"
# The postmaster is the oldest postgres process (its backends are its children).
pg_pid=$(pgrep -o -x postgres || true)
[[ -n $pg_pid ]] && pidlist+=",postgres=$pg_pid"

load=()
if [[ $PIN == 1 ]]; then
	command -v taskset >/dev/null || scripts/install-pkg.sh util-linux
	for pid in "${pids[@]}" $(pgrep -x redis-server) $(pgrep -x postgres); do
		taskset -acp 1 "$pid" >/dev/null
	done
	load=(taskset -c 0)
fi

echo "bench.sh: commit $(git rev-parse --short HEAD), $(nproc) cores, $GATEWAYS gateway(s), pinned: $PIN, Herald's GOMAXPROCS: ${PROCS:-default}" >&2
"${load[@]}" bin/heraldload -gateways "$(
	IFS=,
	echo "${gws[*]}"
)" -pids "$pidlist" "$@"
