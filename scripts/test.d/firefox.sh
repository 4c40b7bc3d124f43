# firefox.sh, sourced by scripts/test.sh: the Firefox end-to-end test
# (test/e2e/firefox_test.go) drives a stock Firefox ESR. Install it when missing
# (Debian's firefox-esr), and tell the test where it is. Fast when present.
if ! command -v firefox-esr >/dev/null; then
	scripts/install-pkg.sh firefox-esr
fi
HERALD_FIREFOX=$(command -v firefox-esr)
export HERALD_FIREFOX
echo "firefox.sh: $("$HERALD_FIREFOX" --version 2>/dev/null || echo "$HERALD_FIREFOX")" >&2
