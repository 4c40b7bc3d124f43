#!/usr/bin/env bash
# deps.sh makes sure a Postgres and a Redis answer, for tests and local runs, and
# prints export lines for the caller to eval:
#
#   eval "$(scripts/deps.sh)"   start or reuse; export HERALD_POSTGRES_URL, HERALD_REDIS_URL
#   scripts/deps.sh stop        stop the servers this script started, and nothing else
#
# A server named by HERALD_POSTGRES_URL or HERALD_REDIS_URL is only checked. Otherwise a
# server already answering on the usual local port is used, and failing that a throwaway
# one is started under the state dir, ${HERALD_RUN_DIR:-/tmp/herald-run}. The state dir
# stays outside the checkout: CI clones into a mode-700 mktemp dir, which the postgres
# user cannot traverse.
#
# Only the export lines go to stdout; everything else goes to stderr.
set -euo pipefail

readonly RUN_DIR="${HERALD_RUN_DIR:-/tmp/herald-run}"
readonly PG_STATE="$RUN_DIR/pg"
readonly PG_DATA="$PG_STATE/data"
readonly PG_LOG="$PG_STATE/postgres.log"
readonly REDIS_STATE="$RUN_DIR/redis"
readonly REDIS_PIDFILE="$REDIS_STATE/redis.pid"
readonly REDIS_PORTFILE="$REDIS_STATE/port"
readonly REDIS_LOG="$REDIS_STATE/redis.log"

readonly PG_USER=herald
readonly PG_DEFAULT_URL="postgres://$PG_USER@127.0.0.1:5432/postgres?sslmode=disable"
readonly PG_PORTS=(5432 55432)
readonly REDIS_DEFAULT_URL="redis://127.0.0.1:6379/0"
readonly REDIS_PORTS=(6379 56379)

# WAIT_SECONDS bounds every wait for a server to come up or go away; PROBE_SECONDS
# bounds one check that a server answers (all local, so it need not be long).
readonly WAIT_SECONDS=60
readonly PROBE_SECONDS=3

log() { printf 'deps.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	cat >&2 <<EOF
usage: $0 [start|cluster|stop]
  start (default)  make sure Postgres and Redis answer; print export lines to eval
  cluster          the same, plus a three-master Redis Cluster (HERALD_REDIS_CLUSTER_URL)
  stop             stop the Postgres and Redis this script started under $RUN_DIR
EOF
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# emit prints one export line, single-quoted so that eval takes ? and & literally.
emit() {
	local q="'\\''"
	printf "export %s='%s'\n" "$1" "${2//\'/$q}"
}

# wait_for polls "$@" until it succeeds or WAIT_SECONDS pass.
wait_for() {
	local deadline=$((SECONDS + WAIT_SECONDS))
	until "$@"; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 0.2
	done
}

# port_open reports whether something accepts TCP connections on 127.0.0.1:$1.
port_open() {
	# shellcheck disable=SC2016 # $1 is expanded by the inner bash, bounded by timeout.
	timeout "$PROBE_SECONDS" bash -c 'exec 4<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# first_free_port prints the first of its arguments that nothing listens on.
first_free_port() {
	local port
	for port in "$@"; do
		if ! port_open "$port"; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# apt_install installs Debian packages if we may: as root, or through sudo without a
# password prompt. Otherwise it says what to install and fails.
apt_install() {
	"$(dirname "${BASH_SOURCE[0]}")/install-pkg.sh" "$@" 9>&- || die "could not install $*"
}

# lock_run_dir creates the state dir and holds a lock on it (fd 9) until exit, so that
# two runs at once (parallel CI jobs, two terminals) do not both start a server. Every
# command that may leave a daemon behind (pg_ctl start, redis-server, apt-get) runs with
# 9>&-, or the daemon would hold the lock for as long as it lives.
LOCKED=
lock_run_dir() {
	[[ -z $LOCKED ]] || return 0
	if [[ ! -d $RUN_DIR ]]; then
		if ! mkdir -p "$RUN_DIR"; then
			die "cannot create $RUN_DIR: set HERALD_RUN_DIR to a directory you may write"
		fi
		# 755 whatever the umask: as root, the postgres user must traverse it.
		chmod 755 "$RUN_DIR"
	fi
	exec 9>>"$RUN_DIR/lock" || die "cannot write $RUN_DIR/lock: set HERALD_RUN_DIR to a directory you may write"
	if command -v flock >/dev/null; then
		flock -w "$WAIT_SECONDS" 9 || die "another deps.sh has held $RUN_DIR/lock for ${WAIT_SECONDS}s"
	fi
	LOCKED=1
}

# ---- Postgres ----------------------------------------------------------------------

PG_BIN=

# find_pg_bin sets PG_BIN to the newest installed Postgres server binaries, and puts
# them on PATH so psql and pg_isready are found even without postgresql-client.
find_pg_bin() {
	[[ -z $PG_BIN ]] || return 0
	local dir newest=
	newest=$(for dir in /usr/lib/postgresql/*/bin; do
		if [[ -x $dir/initdb ]]; then echo "$dir"; fi
	done | sort -V | tail -n 1)
	if [[ -z $newest ]] && command -v initdb >/dev/null; then
		newest=$(dirname "$(command -v initdb)")
	fi
	[[ -n $newest ]] || return 1
	PG_BIN=$newest
	PATH="$PATH:$PG_BIN"
}

# as_pg runs a Postgres binary as the postgres user when we are root, since Postgres
# refuses to run as root. It runs from / because our working directory (a mode-700
# checkout in CI) may be closed to that user.
as_pg() {
	if is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# pg_answers reports whether a query succeeds through the connection URL $1; on
# failure the client's complaint is left in PG_ERR.
PG_ERR=
pg_answers() {
	if command -v psql >/dev/null; then
		PG_ERR=$(PGCONNECT_TIMEOUT=$PROBE_SECONDS timeout $((PROBE_SECONDS + 2)) psql -X -Atq -c 'select 1' "$1" 2>&1 >/dev/null) && return 0
	elif command -v pg_isready >/dev/null; then
		PG_ERR=$(timeout $((PROBE_SECONDS + 2)) pg_isready -q -t "$PROBE_SECONDS" -d "$1" 2>&1) && return 0
	else
		PG_ERR="neither psql nor pg_isready is installed (apt-get install postgresql-client)"
	fi
	return 1
}

pg_url() { echo "postgres://$PG_USER@127.0.0.1:$1/postgres?sslmode=disable"; }

pg_running() { as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }

# pg_running_port prints the port our running cluster listens on: the fourth line of
# postmaster.pid.
pg_running_port() { sed -n 4p "$PG_DATA/postmaster.pid"; }

# pg_major prints the major version of PG_BIN: "postgres (PostgreSQL) 15.18 (...)" → 15.
pg_major() { "$PG_BIN/postgres" --version | awk '{ split($3, v, "."); print v[1] }'; }

# pg_prepare_state creates the state dir for our cluster, owned by the user Postgres
# runs as, and makes sure that user can reach it.
pg_prepare_state() {
	mkdir -p "$PG_STATE" || die "cannot create $PG_STATE"
	if is_root; then
		id postgres >/dev/null 2>&1 || die "there is no postgres user to run Postgres as (apt-get install postgresql)"
		chown postgres:postgres "$PG_STATE"
		runuser -u postgres -- test -w "$PG_STATE" -a -x "$PG_STATE" ||
			die "the postgres user cannot reach $PG_STATE (is a parent directory mode 700?): set HERALD_RUN_DIR to a path under /tmp"
	elif [[ ! -w $PG_STATE || (-e $PG_DATA && ! -O $PG_DATA) ]]; then
		die "$PG_STATE is not yours (made by another user?): set HERALD_RUN_DIR to a directory of your own"
	fi
}

pg_init() {
	if [[ -e $PG_DATA ]]; then
		log "removing the unusable cluster in $PG_DATA"
		rm -rf "$PG_DATA"
	fi
	log "creating a throwaway Postgres cluster in $PG_DATA"
	as_pg "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust -U "$PG_USER" \
		--encoding=UTF8 --no-locale --no-sync --no-instructions >/dev/null ||
		die "initdb into $PG_DATA failed"
	# Test data is thrown away, so durability is off.
	as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<EOF

# Added by scripts/deps.sh: a throwaway cluster for tests.
listen_addresses = '127.0.0.1'
unix_socket_directories = '${PG_STATE//\'/\'\'}'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# pg_start_own starts (creating it if need be) the cluster in the state dir, or reuses
# it if it is already running, and sets PG_URL.
pg_start_own() {
	if ! find_pg_bin; then
		apt_install postgresql
		find_pg_bin || die "postgresql is installed but initdb is nowhere to be found"
	fi
	lock_run_dir
	pg_prepare_state

	local port
	if pg_running; then
		port=$(pg_running_port)
		PG_URL=$(pg_url "$port")
		wait_for pg_answers "$PG_URL" ||
			die "our Postgres in $PG_DATA is running but $PG_URL does not answer: $PG_ERR (log: $PG_LOG)"
		log "Postgres: reusing ours on 127.0.0.1:$port ($PG_DATA)"
		return
	fi

	# A half-made cluster, or one from another major version, is not worth keeping.
	if [[ ! -f $PG_DATA/PG_VERSION || $(<"$PG_DATA/PG_VERSION") != "$(pg_major)" ]]; then
		pg_init
	fi

	port=$(first_free_port "${PG_PORTS[@]}") ||
		die "ports ${PG_PORTS[*]} are taken by servers that do not take $PG_USER without a password: free one or set HERALD_POSTGRES_URL"
	log "Postgres: starting ours on 127.0.0.1:$port ($PG_DATA, log $PG_LOG)"
	if ! as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$WAIT_SECONDS" -o "-p $port" >/dev/null 9>&-; then
		tail -n 20 "$PG_LOG" >&2 || true
		die "Postgres did not start; see $PG_LOG"
	fi
	PG_URL=$(pg_url "$port")
	wait_for pg_answers "$PG_URL" || die "Postgres started but $PG_URL does not answer: $PG_ERR"
}

PG_URL=
ensure_postgres() {
	if [[ -n ${HERALD_POSTGRES_URL:-} ]]; then
		find_pg_bin || true # only for psql if postgresql-client is missing
		pg_answers "$HERALD_POSTGRES_URL" ||
			die "HERALD_POSTGRES_URL is set but does not answer: $PG_ERR"
		log "Postgres: using HERALD_POSTGRES_URL"
		PG_URL=$HERALD_POSTGRES_URL
		return
	fi
	find_pg_bin || true
	if pg_answers "$PG_DEFAULT_URL"; then
		log "Postgres: using the one already answering at $PG_DEFAULT_URL"
		PG_URL=$PG_DEFAULT_URL
		return
	fi
	pg_start_own
}

stop_postgres() {
	if [[ ! -f $PG_DATA/PG_VERSION ]]; then
		log "Postgres: no cluster of ours in $PG_DATA"
		return
	fi
	find_pg_bin || die "cannot stop $PG_DATA: no Postgres binaries found"
	if ! pg_running; then
		log "Postgres: ours in $PG_DATA is not running"
		return
	fi
	log "Postgres: stopping ours in $PG_DATA"
	as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t "$WAIT_SECONDS" >/dev/null ||
		die "pg_ctl stop failed; see $PG_LOG"
}

# ---- Redis -------------------------------------------------------------------------

rcli() { timeout "$PROBE_SECONDS" redis-cli "$@" 2>/dev/null; }

# redis_answers reports whether the server at URL $1 answers PING.
redis_answers() { [[ $(rcli -u "$1" ping) == PONG ]]; }

redis_url() { echo "redis://127.0.0.1:$1/0"; }

# redis_own_port prints the port of the Redis started under REDIS_STATE, if it still
# runs: the server on the recorded port must report the recorded pid, so that we never
# mistake (or stop) someone else's Redis for ours.
redis_own_port() {
	local port pid
	[[ -r $REDIS_PORTFILE && -r $REDIS_PIDFILE ]] || return 1
	port=$(<"$REDIS_PORTFILE")
	pid=$(<"$REDIS_PIDFILE")
	[[ -n $pid && $(rcli -h 127.0.0.1 -p "$port" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p') == "$pid" ]] || return 1
	echo "$port"
}

redis_stopped() { ! redis_own_port >/dev/null; }

# redis_start_own starts a Redis under the state dir, or reuses ours if it runs, and
# sets REDIS_URL.
redis_start_own() {
	if ! command -v redis-server >/dev/null; then
		apt_install redis-server
		# Debian's package starts a Redis of its own on 6379 where it can.
		if redis_answers "$REDIS_DEFAULT_URL"; then
			log "Redis: using the one the redis-server package started at $REDIS_DEFAULT_URL"
			REDIS_URL=$REDIS_DEFAULT_URL
			return
		fi
	fi
	lock_run_dir

	local port
	if port=$(redis_own_port); then
		REDIS_URL=$(redis_url "$port")
		log "Redis: reusing ours on 127.0.0.1:$port ($REDIS_STATE)"
		return
	fi
	port=$(first_free_port "${REDIS_PORTS[@]}") ||
		die "ports ${REDIS_PORTS[*]} are taken by something that does not answer PING: free one or set HERALD_REDIS_URL"
	mkdir -p "$REDIS_STATE" || die "cannot create $REDIS_STATE"
	log "Redis: starting ours on 127.0.0.1:$port ($REDIS_STATE, log $REDIS_LOG)"
	echo "$port" >"$REDIS_PORTFILE"
	redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
		--dir "$REDIS_STATE" --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" 9>&- ||
		die "redis-server did not start; see $REDIS_LOG"
	REDIS_URL=$(redis_url "$port")
	if ! wait_for redis_answers "$REDIS_URL"; then
		tail -n 20 "$REDIS_LOG" >&2 || true
		die "Redis started but $REDIS_URL does not answer PING after ${WAIT_SECONDS}s; see $REDIS_LOG"
	fi
}

REDIS_URL=
ensure_redis() {
	# redis-tools is small; it has redis-cli without a server.
	command -v redis-cli >/dev/null || apt_install redis-tools
	if [[ -n ${HERALD_REDIS_URL:-} ]]; then
		redis_answers "$HERALD_REDIS_URL" ||
			die "HERALD_REDIS_URL is set but does not answer PING: $(rcli -u "$HERALD_REDIS_URL" ping || echo 'no answer')"
		log "Redis: using HERALD_REDIS_URL"
		REDIS_URL=$HERALD_REDIS_URL
		return
	fi
	if redis_answers "$REDIS_DEFAULT_URL"; then
		log "Redis: using the one already answering at $REDIS_DEFAULT_URL"
		REDIS_URL=$REDIS_DEFAULT_URL
		return
	fi
	redis_start_own
}

stop_redis() {
	if ! command -v redis-cli >/dev/null; then
		log "Redis: no redis-cli, so none of ours can be running"
		return
	fi
	local port
	if ! port=$(redis_own_port); then
		log "Redis: none of ours running under $REDIS_STATE"
		return
	fi
	log "Redis: stopping ours on 127.0.0.1:$port"
	# SHUTDOWN drops the connection, so redis-cli's status says nothing; wait instead.
	rcli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null || true
	wait_for redis_stopped || die "Redis on 127.0.0.1:$port did not stop after ${WAIT_SECONDS}s"
	rm -f "$REDIS_PORTFILE"
}

# A three-master Redis Cluster on loopback, for the suites that must also pass on a
# cluster (every per-user-agent key carries a {uaid} hash tag). Ports 7101-7103.
readonly CLUSTER_STATE="$RUN_DIR/redis-cluster"
readonly CLUSTER_PORTS=(7101 7102 7103)

cluster_url() {
	echo "redis://127.0.0.1:${CLUSTER_PORTS[0]}?addr=127.0.0.1:${CLUSTER_PORTS[1]}&addr=127.0.0.1:${CLUSTER_PORTS[2]}"
}

cluster_ok() { [[ $(rcli -p "${CLUSTER_PORTS[0]}" cluster info | tr -d '\r' | sed -n 's/^cluster_state://p') == ok ]]; }

cluster_all_answer() {
	local port
	for port in "${CLUSTER_PORTS[@]}"; do
		[[ $(rcli -p "$port" ping) == PONG ]] || return 1
	done
}

CLUSTER_URL=
ensure_redis_cluster() {
	if [[ -n ${HERALD_REDIS_CLUSTER_URL:-} ]]; then
		log "Redis Cluster: using HERALD_REDIS_CLUSTER_URL"
		CLUSTER_URL=$HERALD_REDIS_CLUSTER_URL
		return
	fi
	command -v redis-server >/dev/null || apt_install redis-server
	lock_run_dir
	CLUSTER_URL=$(cluster_url)
	if cluster_all_answer && cluster_ok; then
		log "Redis Cluster: reusing the one on ports ${CLUSTER_PORTS[*]}"
		return
	fi
	local port
	for port in "${CLUSTER_PORTS[@]}"; do
		[[ $(rcli -p "$port" ping) == PONG ]] && continue
		port_open "$port" && die "port $port is taken by something that is not Redis: free it or set HERALD_REDIS_CLUSTER_URL"
		# A fresh node each time: an old nodes.conf would remember a cluster that is gone.
		rm -rf "${CLUSTER_STATE:?}/$port"
		mkdir -p "$CLUSTER_STATE/$port"
		redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
			--cluster-config-file "$CLUSTER_STATE/$port/nodes.conf" --save "" --appendonly no \
			--dir "$CLUSTER_STATE/$port" --daemonize yes --pidfile "$CLUSTER_STATE/$port/redis.pid" \
			--logfile "$CLUSTER_STATE/$port/redis.log" 9>&- || die "redis-server on $port did not start"
	done
	wait_for cluster_all_answer || die "Redis Cluster nodes do not answer; see $CLUSTER_STATE/*/redis.log"
	if ! cluster_ok; then
		local addrs=()
		for port in "${CLUSTER_PORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
		log "Redis Cluster: creating it over ${addrs[*]}"
		timeout "$WAIT_SECONDS" redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >&2 ||
			die "redis-cli --cluster create failed (a node may hold keys or an old configuration: scripts/deps.sh stop, then retry)"
		wait_for cluster_ok || die "Redis Cluster did not reach cluster_state:ok"
	fi
}

stop_redis_cluster() {
	local port
	for port in "${CLUSTER_PORTS[@]}"; do
		[[ -r $CLUSTER_STATE/$port/redis.pid ]] || continue
		if [[ $(rcli -p "$port" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p') == "$(<"$CLUSTER_STATE/$port/redis.pid")" ]]; then
			log "Redis Cluster: stopping node $port"
			rcli -p "$port" shutdown nosave >/dev/null || true
		fi
	done
}

main() {
	case ${1:-start} in
	start)
		# The servers' own output (apt-get, initdb, pg_ctl) goes to stderr too.
		ensure_postgres >&2
		ensure_redis >&2
		emit HERALD_POSTGRES_URL "$PG_URL"
		emit HERALD_REDIS_URL "$REDIS_URL"
		;;
	cluster)
		# The single Redis and Postgres too: the suites run against both.
		ensure_postgres >&2
		ensure_redis >&2
		ensure_redis_cluster >&2
		emit HERALD_POSTGRES_URL "$PG_URL"
		emit HERALD_REDIS_URL "$REDIS_URL"
		emit HERALD_REDIS_CLUSTER_URL "$CLUSTER_URL"
		;;
	stop)
		if [[ ! -d $RUN_DIR ]]; then
			log "nothing of ours to stop: no $RUN_DIR"
			return
		fi
		lock_run_dir
		command -v redis-cli >/dev/null && stop_redis_cluster >&2
		stop_redis >&2
		stop_postgres >&2
		;;
	-h | --help | help) usage ;;
	*)
		usage
		exit 2
		;;
	esac
}

main "$@"
