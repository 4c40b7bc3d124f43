# fuzz.sh is a stage of scripts/test.sh (sourced, before go test): it runs each fuzz
# target of the parsers that face application servers for a few seconds, on top of
# its seed corpus (testdata/fuzz/<target>/ in the package), which plain go test
# runs too. A failure leaves the crashing input in testdata/fuzz/<target>/: commit
# it with the fix, so it stays a regression test.
#
# FUZZTIME sets each target's budget (default 3s); FUZZTIME=0 skips the stage.

fuzz_time=${FUZZTIME:-3s}
if [[ $fuzz_time == 0 ]]; then
	echo "fuzz: skipped (FUZZTIME=0)" >&2
else
	# module, package and target of each fuzz run
	fuzz_targets=(
		"services/ingest ./internal/webpush FuzzParseHeaders"
		"services/ingest ./internal/webpush FuzzPush"
		"pkg ./vapid FuzzParseAuthorization"
		"pkg ./token FuzzOpen"
	)
	for fuzz_target in "${fuzz_targets[@]}"; do
		read -r fuzz_mod fuzz_pkg fuzz_name <<<"$fuzz_target"
		echo "fuzz: $fuzz_mod/${fuzz_pkg#./} $fuzz_name for $fuzz_time" >&2
		# The fuzzer's progress lines are noise unless it finds something.
		if ! fuzz_out=$(cd "$fuzz_mod" && go test -run '^$' -fuzz "^${fuzz_name}\$" -fuzztime "$fuzz_time" "$fuzz_pkg" 2>&1); then
			echo "$fuzz_out" >&2
			echo "fuzz: $fuzz_name failed; the input is in $fuzz_mod/${fuzz_pkg#./}/testdata/fuzz/$fuzz_name/" >&2
			return 1
		fi
	done
	unset fuzz_targets fuzz_target fuzz_mod fuzz_pkg fuzz_name fuzz_out
fi
unset fuzz_time
