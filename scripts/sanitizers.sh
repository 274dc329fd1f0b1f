#!/usr/bin/env bash
# AddressSanitizer, Miri and valgrind over the test suite, one after the
# other; each is also a script of its own (scripts/asan.sh, scripts/miri.sh,
# scripts/valgrind.sh) with its skip list and the reasons. All three run
# even if one fails; the exit status is non-zero if any failed.
#
#   scripts/sanitizers.sh [asan] [miri] [valgrind]   (default: all three)
#
# About 10-12 minutes on a 2-core machine from a cold cache, less when
# target/debug is already built (valgrind reuses it) or target/asan and
# target/miri are warm.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then
    stages=(valgrind miri asan)
fi

failed=()
started=$SECONDS
for stage in "${stages[@]}"; do
    case "$stage" in
    asan | miri | valgrind) ;;
    *)
        echo "unknown stage '$stage' (asan, miri, valgrind)" >&2
        exit 2
        ;;
    esac
    printf '\n--- %s\n' "$stage"
    start=$SECONDS
    if bash "scripts/$stage.sh"; then
        printf -- '--- %s: passed in %d s\n' "$stage" "$((SECONDS - start))"
    else
        printf -- '--- %s: FAILED after %d s\n' "$stage" "$((SECONDS - start))"
        failed+=("$stage")
    fi
done

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "sanitizers: FAILED: ${failed[*]} ($((SECONDS - started)) s)"
    exit 1
fi
echo "sanitizers: all passed in $((SECONDS - started)) s"
