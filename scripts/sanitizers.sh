#!/usr/bin/env bash
# AddressSanitizer, Miri and valgrind over the test suite (valgrind and
# Miri side by side, then AddressSanitizer); each is also a script of its
# own (scripts/asan.sh, scripts/miri.sh, scripts/valgrind.sh) with its skip
# list and the reasons. Each stage's output is printed when it ends. All three run
# even if one fails; the exit status is non-zero if any failed.
#
#   scripts/sanitizers.sh [asan] [miri] [valgrind]   (default: all three)
#
# Times are printed per stage; see .ci/run for the budget.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then
    stages=(valgrind miri asan)
fi

failed=()
started=$SECONDS
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

for stage in "${stages[@]}"; do
    case "$stage" in
    asan | miri | valgrind) ;;
    *)
        echo "unknown stage '$stage' (asan, miri, valgrind)" >&2
        exit 2
        ;;
    esac
done

# Runs one stage with its output in $logs/<stage>.log; its exit status in
# $logs/<stage>.status, its time in $logs/<stage>.time.
run_stage() {
    local stage=$1 start=$SECONDS status=0
    bash "scripts/$stage.sh" >"$logs/$stage.log" 2>&1 || status=$?
    echo "$status" >"$logs/$stage.status"
    echo "$((SECONDS - start))" >"$logs/$stage.time"
}

report() {
    local stage=$1
    printf '\n--- %s\n' "$stage"
    cat "$logs/$stage.log"
    if [ "$(cat "$logs/$stage.status")" = 0 ]; then
        printf -- '--- %s: passed in %d s\n' "$stage" "$(cat "$logs/$stage.time")"
    else
        printf -- '--- %s: FAILED after %d s\n' "$stage" "$(cat "$logs/$stage.time")"
        failed+=("$stage")
    fi
}

# valgrind and Miri run their tests on one core each (valgrind serialises a
# process's threads; Miri interprets one thread at a time), so on a 2-core
# machine they run side by side: in the last sequential run they took
# 1261 s and 970 s one after the other. AddressSanitizer's tests use both
# cores and run alone afterwards.
parallel=()
for stage in "${stages[@]}"; do
    case "$stage" in
    valgrind | miri) parallel+=("$stage") ;;
    esac
done
pids=()
for stage in "${parallel[@]}"; do
    run_stage "$stage" &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || true
done
for stage in "${parallel[@]}"; do
    report "$stage"
done
for stage in "${stages[@]}"; do
    if [ "$stage" = asan ]; then
        run_stage asan
        report asan
    fi
done

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "sanitizers: FAILED: ${failed[*]} ($((SECONDS - started)) s)"
    exit 1
fi
echo "sanitizers: all passed in $((SECONDS - started)) s"
