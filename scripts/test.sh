#!/usr/bin/env bash
# test.sh runs every test of every module against real Postgres and Redis, which
# deps.sh finds or starts. `make test` and .ci/run call it.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=/dev/null
eval "$(scripts/deps.sh cluster)"

# Node and npm drive the third-party sender library in the interop tests.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	scripts/install-pkg.sh nodejs npm
fi
(cd test/interop/webpush-node && npm ci --no-audit --no-fund --loglevel=error >&2)

# Each optional stage adds what it needs (browsers, Helm, fuzz seeds) from its own script.
for stage in scripts/test.d/*.sh; do
	[[ -e $stage ]] || continue
	echo "== $(basename "$stage" .sh)" >&2
	# shellcheck source=/dev/null
	source "$stage"
done

modules=(pkg proto services/ingest services/router services/gateway test)
echo "== go vet" >&2
for m in "${modules[@]}"; do (cd "$m" && go vet ./...); done
echo "== go test" >&2
pkgs=()
for m in "${modules[@]}"; do pkgs+=("./$m/..."); done
# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags
go test -count=1 -timeout 12m ${GOTESTFLAGS:-} "${pkgs[@]}"
