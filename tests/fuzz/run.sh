#!/bin/sh
# run.sh — build and run the libFuzzer targets in tests/fuzz (`make fuzz`).
#
#   sh tests/fuzz/run.sh [TARGET...]      e.g. fuzz_parser
#
# Environment:
#   FUZZ_SECONDS  how long each target runs (default 30; 0: only build and
#                 replay the seeds and the committed crash reproducers)
#   CLANG         the compiler (default: clang, else clang-14)
#   BUILD         build directory (default: build); binaries, the growing
#                 corpora and new crash files go to $BUILD/fuzz
#
# Each tests/fuzz/fuzz_NAME.c says in its header comment which library
# sources it needs ("fuzz-sources: lib/a.c lib/b.c") and which pkg-config
# packages ("fuzz-packages: libcrypto"); a target whose sources do not
# exist (yet) is skipped with a message.  Seeds are in tests/fuzz/NAME_seeds/
# (read-only: new inputs go to $BUILD/fuzz/corpus/NAME), a dictionary in
# tests/fuzz/NAME.dict if there is one, and inputs that once crashed a
# target in tests/fuzz/NAME_crashes/: those are replayed first, so a fix
# stays fixed.
#
# Exits 1 when a target crashed, leaked, hit undefined behaviour or broke
# one of its checks (the input is kept in $BUILD/fuzz/crashes/NAME/ and
# named in the output), 2 when a target could not be built.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" || exit 2
SECONDS_EACH=${FUZZ_SECONDS:-30}
BUILD=${BUILD:-build}
OUT=$BUILD/fuzz
PKG_CONFIG=${PKG_CONFIG:-pkg-config}

if [ -z "${CLANG:-}" ]; then
	for c in clang clang-14; do
		if command -v "$c" >/dev/null 2>&1; then
			CLANG=$c
			break
		fi
	done
fi
if [ -z "${CLANG:-}" ]; then
	echo "fuzz: clang not found (Debian: apt-get install clang" \
		"libclang-rt-14-dev)" >&2
	exit 2
fi

mkdir -p "$OUT"
# libFuzzer's runtime comes with clang's compiler-rt; check it links.
probe=$OUT/.probe
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! "$CLANG" -fsanitize=fuzzer "$probe.c" -o "$probe" 2>"$probe.err"; then
	echo "fuzz: $CLANG cannot link libFuzzer (Debian: apt-get install" \
		"libclang-rt-14-dev):" >&2
	cat "$probe.err" >&2
	exit 2
fi
rm -f "$probe" "$probe.c" "$probe.err"

CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Ilib
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer"

targets=
if [ $# -gt 0 ]; then
	for t in "$@"; do
		targets="$targets tests/fuzz/${t%.c}.c"
	done
else
	targets=$(ls tests/fuzz/fuzz_*.c)
fi

failed=0
broken=0
summary=
for src in $targets; do
	name=$(basename "$src" .c)
	if [ ! -f "$src" ]; then
		echo "fuzz: $src: no such target" >&2
		broken=1
		continue
	fi
	sources=$(sed -n 's/^ \* fuzz-sources: *//p' "$src")
	packages=$(sed -n 's/^ \* fuzz-packages: *//p' "$src")
	missing=
	for f in $sources; do
		[ -f "$f" ] || missing="$missing $f"
	done
	if [ -n "$missing" ]; then
		echo "== $name: skipped (not in the tree yet:$missing)"
		summary="$summary
$name: skipped, missing$missing"
		continue
	fi
	pcflags=
	plibs=
	if [ -n "$packages" ]; then
		# shellcheck disable=SC2086 # a list of packages
		if ! pcflags=$($PKG_CONFIG --cflags $packages 2>&1) ||
			! plibs=$($PKG_CONFIG --libs $packages 2>&1); then
			echo "== $name: skipped (pkg-config: $pcflags)"
			summary="$summary
$name: skipped, pkg-config packages missing: $packages"
			continue
		fi
	fi
	bin=$OUT/$name
	echo "== $name: building"
	# shellcheck disable=SC2086 # word lists on purpose
	if ! "$CLANG" $CFLAGS $pcflags -o "$bin" "$src" $sources $plibs; then
		echo "fuzz: $name does not build" >&2
		broken=1
		summary="$summary
$name: BUILD FAILED"
		continue
	fi

	crashdir=$OUT/crashes/$name
	corpus=$OUT/corpus/$name
	mkdir -p "$crashdir" "$corpus"
	result=ok

	# Inputs that once failed must pass now.
	repro=
	if [ -d "tests/fuzz/${name}_crashes" ]; then
		repro=$(find "tests/fuzz/${name}_crashes" -type f ! -name '*.md' |
			sort)
	fi
	for r in $repro; do
		if ! "$bin" -runs=1 "$r" >"$OUT/$name.replay.log" 2>&1; then
			echo "fuzz: $name: $r still fails:" >&2
			grep -E 'ERROR|fuzz_[a-z0-9]+:|runtime error' \
				"$OUT/$name.replay.log" | head -n 3 >&2
			result="REPRODUCER FAILS"
			failed=1
		fi
	done
	if [ "$result" != ok ]; then
		# Fuzzing would only find the same bug again.
		summary="$summary
$name: $result (not fuzzed until tests/fuzz/${name}_crashes pass)"
		continue
	fi

	dict=
	[ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
	seeds=
	[ -d "tests/fuzz/${name}_seeds" ] && seeds="tests/fuzz/${name}_seeds"
	if [ "$SECONDS_EACH" -gt 0 ]; then
		echo "== $name: fuzzing for $SECONDS_EACH s"
		# shellcheck disable=SC2086
		"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 \
			-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
			-artifact_prefix="$crashdir/" $dict "$corpus" $seeds \
			>"$OUT/$name.log" 2>&1
		rc=$?
	else
		# shellcheck disable=SC2086
		"$bin" -runs=0 $dict "$corpus" $seeds >"$OUT/$name.log" 2>&1
		rc=$?
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' \
		"$OUT/$name.log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$OUT/$name.log" | tail -n 1)
	if [ $rc -ne 0 ]; then
		failed=1
		result="FAILED"
		echo "fuzz: $name failed; see $OUT/$name.log:" >&2
		grep -E 'ERROR|fuzz_[a-z0-9]+:|runtime error|Test unit written' \
			"$OUT/$name.log" | head -n 8 >&2
	fi
	summary="$summary
$name: $result (${runs:-0} runs, ${cov:-cov: ?})"
done

echo "== fuzz summary:$summary"
if [ $broken -ne 0 ]; then
	exit 2
fi
exit $failed
