#!/usr/bin/env bash
# install-helm.sh makes sure Helm is installed and prints its path. It builds
# helm.sh/helm/v3/cmd/helm from the Go module proxy into bin/ (no other download
# channel is needed), and does nothing when bin/helm already is that version.
#
#   scripts/install-helm.sh                     # prints /path/to/bin/helm
#   HELM_VERSION=v3.22.0 scripts/install-helm.sh
#   HERALD_HELM=/usr/local/bin/helm scripts/install-helm.sh   # use that helm as it is
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=${HELM_VERSION:-v3.22.0}
bin=${HELM_BIN_DIR:-$root/bin}

# A Helm chosen by the caller is used as it is (Helm 3 or Helm 4).
if [[ -n ${HERALD_HELM:-} ]]; then
	if [[ ! -x $HERALD_HELM ]]; then
		echo "install-helm: HERALD_HELM=$HERALD_HELM is not an executable" >&2
		exit 1
	fi
	echo "$HERALD_HELM"
	exit 0
fi

helm=$bin/helm
# A `go install`ed Helm reports its module version, so this check is exact and takes
# a few milliseconds.
if [[ -x $helm ]] && [[ $("$helm" version --template '{{.Version}}' 2>/dev/null || true) == "$version" ]]; then
	echo "$helm"
	exit 0
fi

if ! command -v go >/dev/null; then
	echo "install-helm: go is needed to build Helm $version" >&2
	exit 1
fi
echo "install-helm: building Helm $version into $bin (a minute or two, once)" >&2
mkdir -p "$bin"
# Everything runs outside the workspace: `go install pkg@version` builds Helm's own
# module graph.
export GOWORK=off GOFLAGS=-buildvcs=false
# Helm's release builds stamp its version and the Kubernetes version its
# capabilities default to (that of its client-go); a plain `go install` would leave
# "v3.22" and Kubernetes 1.20. Do what Helm's Makefile does.
moddir=$(cd / && go mod download -json "helm.sh/helm/v3@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
k8s=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$moddir/go.mod" | head -1)
if [[ -z $k8s ]]; then
	echo "install-helm: cannot read the client-go version of Helm $version" >&2
	exit 1
fi
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
	ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s"
done
(cd / && CGO_ENABLED=0 GOBIN=$bin go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$version") >&2
got=$("$helm" version --template '{{.Version}}')
if [[ $got != "$version" ]]; then
	echo "install-helm: built Helm reports $got, wanted $version" >&2
	exit 1
fi
echo "$helm"
