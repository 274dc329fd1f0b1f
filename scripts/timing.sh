#!/usr/bin/env bash
# Timing side-channel check: a dudect-style Welch t-test of memguard's
# constant-time compare (LockedBuffer::equal_to) and of its copy
# (LockedBuffer::copy, a plain memcpy: watched here, not promised; see
# src/crypto/ct.rs).
#
#     scripts/timing.sh [--samples N] [--reps R] [--seed S] [--no-pin]
#
# Method (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?"):
#   - Two input classes, drawn by a fair coin (seeded xorshift) for every
#     measurement, so the classes are interleaved at random:
#       compare: A = an input equal to the buffer, B = one whose FIRST byte
#                differs (random);
#       copy:    A = an all-zero source, B = a random one (same length).
#   - All inputs of a batch are prepared before any of its calls is timed,
#     both classes by the same code (only the values differ); each call is
#     timed alone with lfence; rdtsc; lfence (TSC ticks).
#   - Welch's t between the classes, over all measurements and over those
#     below each of dudect's 100 percentile thresholds (cropping the tail of
#     interrupts and preemption); a run keeps the t of largest magnitude.
#   - Sizes 32 and 1024 bytes; 1,000,000 calls per function, size and
#     repetition; 5 independent repetitions (fresh secret, coins, timings).
#   - Positive controls, timed by the same harness: a naive early-exit byte
#     compare (class B returns at byte 0) and a naive copy that skips zero
#     bytes (class A does no stores).
#
# Asserted (exit status 1 otherwise), on the MEDIAN over the repetitions of
# each run's max |t|:
#   - memguard's equal_to and copy:  median max |t| < 10  (no leak seen);
#   - each positive control:         median max |t| > 50  (the harness can
#     still see a leak: guards against a check that passes by going blind).
# Exit 2: setup error (build failed, no locked memory, not Linux x86_64).
#
# Not part of `cargo test` on purpose: timings are never a hard assertion in
# ordinary tests. .ci/run runs it as a step of its own ("timing: dudect-style
# t-test ..."), judged by the medians above. Runs in release mode, pinned to
# one CPU (taskset here when available, else the tool pins itself with
# sched_setaffinity). Needs only a stable Rust toolchain. The tool crate,
# tools/dudect, is its own workspace (not a member of the main one) and
# builds into tools/dudect/target unless CARGO_TARGET_DIR is set.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
manifest="$root/tools/dudect/Cargo.toml"
target_dir="${CARGO_TARGET_DIR:-$root/tools/dudect/target}"
SECONDS=0

if [[ "$(uname -s)" != Linux || "$(uname -m)" != x86_64 ]]; then
    echo "timing.sh: needs Linux on x86_64 (rdtsc); this is $(uname -s) $(uname -m)" >&2
    exit 2
fi

echo "=== building tools/dudect (release)"
if ! cargo build --release --manifest-path "$manifest" --target-dir "$target_dir"; then
    echo "timing.sh: build failed" >&2
    exit 2
fi
bin="$target_dir/release/memguard-dudect"

# Pin to the last CPU this shell may run on (CPU 0 usually takes the most
# interrupts). "0-3,8-11" -> "8-11" -> "11".
run=("$bin" "$@")
if command -v taskset >/dev/null 2>&1; then
    if allowed="$(taskset -cp $$ 2>/dev/null)"; then
        allowed="${allowed##*: }"
        last="${allowed##*,}"
        cpu="${last##*-}"
        if [[ "$cpu" =~ ^[0-9]+$ ]]; then
            run=(taskset -c "$cpu" "${run[@]}")
        fi
    fi
fi

echo "=== running: ${run[*]}"
status=0
"${run[@]}" || status=$?

echo
echo "timing.sh: exit status $status after ${SECONDS} s (build included)"
exit "$status"
