# shellcheck shell=bash
# helm.sh, sourced by scripts/test.sh: the chart tests (test/charts) run a real
# helm. Build it when missing (scripts/install-helm.sh; fast when present) and tell
# the tests where it is. Also runs on its own: `bash scripts/test.d/helm.sh`.
HERALD_HELM="$("$(dirname "${BASH_SOURCE[0]}")/../install-helm.sh")"
export HERALD_HELM
echo "helm: $HERALD_HELM ($("$HERALD_HELM" version --template '{{.Version}}'))" >&2
