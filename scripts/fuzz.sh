#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer + AddressSanitizer, nightly Rust).
#
#   scripts/fuzz.sh [smoke] [TARGET...]   smoke run (the default; for CI)
#   scripts/fuzz.sh merge [TARGET...]     grow and minimise the committed corpus
#   scripts/fuzz.sh list                  the targets
#
# The targets live in fuzz/fuzz_targets/ (a cargo workspace of its own, so
# the main workspace never builds them); with no TARGET, all of them.
#
# smoke: replays fuzz/regressions/<target>/ (inputs that once crashed), then
#   fuzzes each target for FUZZ_SECONDS (default 60) starting from the
#   committed corpus fuzz/corpus/<target>/. libFuzzer writes new inputs only
#   to the first corpus directory it is given, and that is a fresh temporary
#   directory: the committed corpus is read, never written, so the checkout
#   stays clean. Exits non-zero if any target fails to build, crashes, panics,
#   leaks, times out or runs out of memory; the crashing input is in
#   fuzz/artifacts/<target>/ (ignored by git), and the log says how to
#   reproduce it.
#
# merge: fuzzes each target for FUZZ_SECONDS (0: skip fuzzing) from the
#   committed corpus into a temporary directory, then minimises the two
#   together and replaces fuzz/corpus/<target>/ with the result: with
#   `-set_cover_merge=1` (a small set of inputs with every coverage feature),
#   or, if that still leaves 200 files or more, with `-merge=1
#   -use_counters=0` (every edge, hit counts ignored). This is what
#   `cargo fuzz cmin` does, made smaller: its plain `-merge=1` keeps
#   hundreds of files per target here. Review the result and commit it; keep
#   each corpus under 200 files and 1 MiB.
#
# Environment:
#   FUZZ_SECONDS      seconds of fuzzing per target (default 60)
#   FUZZ_RSS_MB       libFuzzer's -rss_limit_mb (default 4096)
#   FUZZ_TIMEOUT      seconds before one input counts as a hang (default 60)
#   FUZZ_TOOLCHAIN    the nightly toolchain to build with (default nightly)
#   FUZZ_LOG_DIR      where to keep the logs (default: a temporary directory)
#   FUZZ_ARGS         extra libFuzzer arguments, split on spaces
#
# Needs nightly Rust (for -Zsanitizer) and a C++ compiler (libFuzzer is
# built from source); installs the toolchain and cargo-fuzz when missing.
# Each buffer locks memory: as a non-root user raise `ulimit -l` (the targets
# keep few buffers alive, a few MiB is plenty).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_RSS_MB="${FUZZ_RSS_MB:-4096}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-60}"
FUZZ_TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
# Release build with debug assertions and overflow checks, AddressSanitizer.
# Every command uses the same flags, so nothing is rebuilt between them.
BUILD_FLAGS=(--debug-assertions --sanitizer address)
# Limits for a committed corpus, per target.
MAX_FILES=200
MAX_BYTES=$((1024 * 1024))

step() { printf '\n=== %s\n' "$*"; }
die() {
    printf 'fuzz.sh: %s\n' "$*" >&2
    exit 2
}

case "${1:-smoke}" in
smoke | merge | list)
    mode="${1:-smoke}"
    shift || true
    ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
*) mode=smoke ;;
esac

[[ "$FUZZ_SECONDS" =~ ^[0-9]+$ ]] || die "FUZZ_SECONDS must be a whole number of seconds"

all_targets() {
    local f
    for f in fuzz/fuzz_targets/*.rs; do
        basename "$f" .rs
    done
}

if [[ $mode == list ]]; then
    all_targets
    exit 0
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(all_targets)
fi
for t in "${targets[@]}"; do
    [[ -f fuzz/fuzz_targets/$t.rs ]] || die "no fuzz target '$t' (see: $0 list)"
done

step "toolchain"
if ! rustup run "$FUZZ_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$FUZZ_TOOLCHAIN" --profile minimal
fi
rustup run "$FUZZ_TOOLCHAIN" rustc --version
if ! cargo fuzz --version >/dev/null 2>&1; then
    # cargo-fuzz itself builds with stable; only the targets need nightly.
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

fuzz() { cargo "+$FUZZ_TOOLCHAIN" fuzz "$@"; }

LOG_DIR="${FUZZ_LOG_DIR:-$(mktemp -d -t memguard-fuzz-logs.XXXXXX)}"
mkdir -p "$LOG_DIR"
WORK="$(mktemp -d -t memguard-fuzz.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# Splits FUZZ_ARGS on spaces on purpose.
read -r -a extra_args <<<"${FUZZ_ARGS:-}"
libfuzzer_args=(
    -rss_limit_mb="$FUZZ_RSS_MB"
    -timeout="$FUZZ_TIMEOUT"
    -print_final_stats=1
    "${extra_args[@]}"
)

# "<executions> <exec/s> <cov> <ft> <corpus>" from a libFuzzer log.
stats() {
    local log="$1" execs rate done_line cov ft corp
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -n1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$done_line")
    echo "${execs:-?} ${rate:-?} ${cov:-?} ${ft:-?} ${corp:-?}"
}

build() {
    local t="$1" start
    start=$SECONDS
    fuzz build "${BUILD_FLAGS[@]}" "$t"
    echo $((SECONDS - start))
}

smoke() {
    local failed=() summary=() t build_s run_s start status log reg
    for t in "${targets[@]}"; do
        step "$t: build"
        build_s=$(build "$t" | tail -n1)

        reg="fuzz/regressions/$t"
        if compgen -G "$reg/*" >/dev/null; then
            step "$t: replay $reg"
            if ! fuzz run "${BUILD_FLAGS[@]}" "$t" "$reg"/* -- "${libfuzzer_args[@]}" \
                >"$LOG_DIR/$t.regressions.log" 2>&1; then
                tail -n 60 "$LOG_DIR/$t.regressions.log"
                echo "$t: an input in $reg fails again (log: $LOG_DIR/$t.regressions.log)"
                failed+=("$t(regression)")
            fi
        fi

        step "$t: fuzz for ${FUZZ_SECONDS}s"
        mkdir -p "fuzz/corpus/$t" "$WORK/$t"
        log="$LOG_DIR/$t.log"
        start=$SECONDS
        status=0
        # New inputs go to $WORK/$t (the first directory); the committed
        # corpus is only read.
        fuzz run "${BUILD_FLAGS[@]}" "$t" "$WORK/$t" "fuzz/corpus/$t" -- \
            -max_total_time="$FUZZ_SECONDS" "${libfuzzer_args[@]}" >"$log" 2>&1 || status=$?
        run_s=$((SECONDS - start))
        read -r execs rate cov ft corp < <(stats "$log")
        if [[ $status -ne 0 ]]; then
            tail -n 80 "$log"
            echo "$t: FAILED (exit $status); artifacts in fuzz/artifacts/$t/, log $log"
            failed+=("$t")
            summary+=("$(printf '%-8s build %4ss  fuzz %4ss  %10s runs  %6s exec/s  cov %5s  ft %6s  corpus %s  FAILED' \
                "$t" "$build_s" "$run_s" "$execs" "$rate" "$cov" "$ft" "$corp")")
        else
            summary+=("$(printf '%-8s build %4ss  fuzz %4ss  %10s runs  %6s exec/s  cov %5s  ft %6s  corpus %s  ok' \
                "$t" "$build_s" "$run_s" "$execs" "$rate" "$cov" "$ft" "$corp")")
        fi
        echo "${summary[-1]}"
    done

    step "summary (logs in $LOG_DIR)"
    printf '%s\n' "${summary[@]}"
    if [[ ${#failed[@]} -gt 0 ]]; then
        echo "fuzzing FAILED: ${failed[*]}"
        exit 1
    fi
    echo "fuzzing passed"
}

# merge_into TARGET OUT FOUND ARGS...: merges the committed corpus and FOUND
# into OUT (emptied first) with the libFuzzer merge arguments ARGS.
merge_into() {
    local t="$1" out="$2" found="$3"
    shift 3
    find "$out" -mindepth 1 -delete
    fuzz run "${BUILD_FLAGS[@]}" "$t" "$out" "fuzz/corpus/$t" "$found" -- \
        "$@" "${libfuzzer_args[@]}" >"$LOG_DIR/$t.merge.log" 2>&1 || {
        tail -n 40 "$LOG_DIR/$t.merge.log"
        die "$t: merge failed; the committed corpus is untouched"
    }
}

merge() {
    local t found merged n bytes
    for t in "${targets[@]}"; do
        step "$t: build"
        build "$t" >/dev/null
        mkdir -p "fuzz/corpus/$t"
        found="$WORK/$t.found"
        merged="$WORK/$t.merged"
        mkdir -p "$found" "$merged"
        if [[ $FUZZ_SECONDS -gt 0 ]]; then
            step "$t: fuzz for ${FUZZ_SECONDS}s"
            # A crash here is reported but does not stop the merge of what
            # was found before it.
            fuzz run "${BUILD_FLAGS[@]}" "$t" "$found" "fuzz/corpus/$t" -- \
                -max_total_time="$FUZZ_SECONDS" "${libfuzzer_args[@]}" \
                >"$LOG_DIR/$t.log" 2>&1 ||
                echo "$t: the fuzzer stopped with an error; see $LOG_DIR/$t.log and fuzz/artifacts/$t/"
        fi
        step "$t: merge"
        # The smallest set of inputs with every feature (edges and hit
        # counts); when that is still too many files, every edge only.
        merge_into "$t" "$merged" "$found" -set_cover_merge=1
        n=$(find "$merged" -type f | wc -l)
        if [[ $n -ge $MAX_FILES ]]; then
            echo "$t: $n files with every feature; keeping every edge only"
            merge_into "$t" "$merged" "$found" -merge=1 -use_counters=0
        fi
        find "fuzz/corpus/$t" -mindepth 1 -delete
        cp -R "$merged"/. "fuzz/corpus/$t/"
        n=$(find "fuzz/corpus/$t" -type f | wc -l)
        bytes=$(find "fuzz/corpus/$t" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
        echo "$t: corpus now $n files, $bytes bytes"
        if [[ $n -ge $MAX_FILES || $bytes -ge $MAX_BYTES ]]; then
            echo "$t: WARNING: the corpus should stay under $MAX_FILES files and $MAX_BYTES bytes"
        fi
    done
}

"$mode"
