#!/usr/bin/env bash
# dev.sh runs Herald locally: router, ingest and gateway, each its own process, on
# Postgres and Redis found or started by deps.sh. `make dev` calls it; Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=/dev/null
eval "$(scripts/deps.sh)"

RUN_DIR="${HERALD_RUN_DIR:-/tmp/herald-run}/dev"
mkdir -p "$RUN_DIR"

# The dev services use their own database, herald_dev, on the server deps.sh found,
# unless HERALD_POSTGRES_URL was given for it.
if [[ $HERALD_POSTGRES_URL == */postgres\?* ]]; then
	if ! psql "$HERALD_POSTGRES_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = 'herald_dev'" | grep -q 1; then
		psql -q "$HERALD_POSTGRES_URL" -c 'CREATE DATABASE herald_dev'
	fi
	HERALD_POSTGRES_URL="${HERALD_POSTGRES_URL/\/postgres\?//herald_dev?}"
fi

echo "building…" >&2
make -s build

# One token key for the dev installation, kept so that endpoints survive restarts.
if [[ -z ${HERALD_TOKEN_KEYS:-} ]]; then
	[[ -s $RUN_DIR/token-key ]] || (umask 077 && bin/heraldctl token-key >"$RUN_DIR/token-key")
	HERALD_TOKEN_KEYS="$(cat "$RUN_DIR/token-key")"
fi
export HERALD_POSTGRES_URL HERALD_REDIS_URL HERALD_TOKEN_KEYS
export HERALD_LOG_FORMAT="${HERALD_LOG_FORMAT:-text}"

pids=()
stop() {
	trap - INT TERM EXIT
	echo "stopping…" >&2
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# run starts a service with its output prefixed by its name.
run() {
	local name=$1
	shift
	"bin/$name" "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
	pids+=($!)
}

wait_ready() {
	local name=$1 url=$2
	for _ in $(seq 100); do
		curl -fsS "$url" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "$name did not become ready; see its log above" >&2
	exit 1
}

run router
wait_ready router http://127.0.0.1:8091/readyz
run ingest
HERALD_DEMO=true run gateway
wait_ready ingest http://127.0.0.1:8001/readyz
wait_ready gateway http://127.0.0.1:8081/readyz

cat >&2 <<EOF2

  Herald is running.
    user agents (WebSocket):   ws://127.0.0.1:8080/   (SSE and long-polling under /ua, the JS SDK at /sdk/herald.js)
    demo page:                 http://127.0.0.1:8080/demo/
    app servers (push API):    http://127.0.0.1:8000/wpush/v2/<token>
    health:                    http://127.0.0.1:{8001,8091,8081}/readyz

  Try it, in two more terminals:
    bin/heraldctl listen                   # prints its subscription (also in ~/.herald/subscription.json), then every message
    bin/heraldctl send -sub ~/.herald/subscription.json -text 'hello, Herald'

  Ctrl-C stops everything.

EOF2
wait -n "${pids[@]}"
echo "a service exited; stopping the others" >&2
