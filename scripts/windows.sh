#!/usr/bin/env bash
# The test suite for Windows (x86_64-pc-windows-gnu, built with mingw-w64),
# run under wine on this Linux machine:
#
#   scripts/windows.sh [cargo test arguments...]
#
# scripts/cross/wine.sh sets up the wine prefix, the ProcessPrng shim and a
# persistent wineserver (stopped again on exit) and makes wine cargo's runner
# for the target. Tests that re-run their own executable as a child start it
# directly: inside wine a Windows program starts other Windows programs
# itself. A child that faults dies with STATUS_ACCESS_VIOLATION (exit code
# 0xC0000005), as on Windows; wine's debugger is disabled, so a crash never
# waits for it.
#
# What wine cannot check, so these paths are untested here (and stated as
# untested on real Windows in README.md): VirtualLock and
# SetProcessWorkingSetSize(Ex) succeed without effect (wine neither pins
# pages nor enforces a working-set quota, so ERROR_WORKING_SET_QUOTA never
# happens), and kernel32 has no WerRegisterExcludedMemoryBlock (so the WER
# exclusion is never registered; there is no WER to write a dump either).
#
# Builds into target/x86_64-pc-windows-gnu; the wine prefix lives in
# target/wine-prefix.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-pc-windows-gnu

# Tests that cannot pass under wine, with why: none so far.
SKIP=()

# No libsodium for Windows here: the cipher's libsodium comparison finds
# none and passes with a note (it runs natively in the test stage).
unset MEMGUARD_REQUIRE_LIBSODIUM

# shellcheck source=cross/wine.sh
. scripts/cross/wine.sh
wine_setup
trap wine_stop EXIT

# shellcheck source=lib.sh
. scripts/lib.sh

skip_args=()
for t in "${SKIP[@]}"; do
    skip_args+=(--skip "$t")
done

printf '+ wine: %s\n' "$("$WINELOADER" --version)"
# The examples first: tests/examples.rs runs them and does not build them.
run cargo build --workspace --target "$TARGET" --examples
run cargo test --workspace --target "$TARGET" --no-fail-fast "$@" -- "${skip_args[@]}"
echo "windows (wine): passed${SKIP[*]:+ (skipped: ${SKIP[*]})}"
