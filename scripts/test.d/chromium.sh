# chromium.sh, sourced by scripts/test.sh: the SDK test (test/e2e/sdk_test.go) drives
# Debian's Chromium, headless, with the npm package playwright-core (test/browser),
# which never downloads a browser of its own. Install both when missing, and tell the
# test where Chromium is. Fast when present.
if ! command -v chromium >/dev/null; then
	scripts/install-pkg.sh chromium
fi
HERALD_CHROMIUM=$(command -v chromium)
export HERALD_CHROMIUM
# npm ci when node_modules is missing, or older than the lock file.
if [[ ! -e test/browser/node_modules/.package-lock.json || test/browser/package-lock.json -nt test/browser/node_modules/.package-lock.json ]]; then
	(cd test/browser && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
echo "chromium.sh: $("$HERALD_CHROMIUM" --version 2>/dev/null || echo "$HERALD_CHROMIUM")" >&2
