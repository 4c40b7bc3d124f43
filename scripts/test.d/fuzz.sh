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
		fuzz_dir="$fuzz_mod/${fuzz_pkg#./}/testdata/fuzz/$fuzz_name"
		fuzz_before=$(ls "$fuzz_dir" 2>/dev/null || true)
		# The fuzzer's progress lines are noise unless it finds something.
		if ! fuzz_out=$(cd "$fuzz_mod" && go test -run '^$' -fuzz "^${fuzz_name}\$" -fuzztime "$fuzz_time" "$fuzz_pkg" 2>&1); then
			# Go's fuzzing coordinator can fail a run at the end of -fuzztime with a
			# bare "context deadline exceeded" and no input (go.dev/issue/75804, fixed
			# in Go 1.27): a finding always writes its input, so only that fails.
			if [[ $(ls "$fuzz_dir" 2>/dev/null || true) == "$fuzz_before" ]] &&
				grep -q '^    context deadline exceeded$' <<<"$fuzz_out" &&
				! grep -q -e 'panic:' -e 'Failing input' <<<"$fuzz_out"; then
				echo "fuzz: $fuzz_name: the fuzzer stopped with its own deadline race (go.dev/issue/75804) and found nothing; not a failure" >&2
				continue
			fi
			echo "$fuzz_out" >&2
			echo "fuzz: $fuzz_name failed; the input is in $fuzz_dir/" >&2
			return 1
		fi
	done
	unset fuzz_targets fuzz_target fuzz_mod fuzz_pkg fuzz_name fuzz_out fuzz_dir fuzz_before
fi
unset fuzz_time
