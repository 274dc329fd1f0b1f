#!/usr/bin/env bash
# The unit and integration tests under AddressSanitizer (nightly Rust).
#
#   scripts/asan.sh
#
# Builds into target/asan (never disturbs the normal target/debug build),
# with the examples first, because tests/examples.rs runs them and does not
# build them itself. The examples and every child process a test re-runs
# itself as are instrumented too, and inherit ASAN_OPTIONS.
#
# ASAN_OPTIONS:
#   handle_segv=0, handle_sigbus=0: ASan installs no SIGSEGV/SIGBUS handler,
#     so memguard's crash handler (wipe, chain, re-raise) is the one that
#     runs and the death tests still see the process die of the signal.
#     With ASan's handler the crash handler would chain to it, and ASan
#     would print a report and exit(1) instead.
#   allow_user_segv_handler=1: let memguard install its own handler.
#   detect_leaks=1: LeakSanitizer on, with scripts/lsan-suppressions.txt.
#     LSan stops the world with ptrace, which the crate's process hardening
#     (PR_SET_DUMPABLE=0) forbids without CAP_SYS_PTRACE: off when not root.
# Neither the mlock/RLIMIT_MEMLOCK tests nor the smaps, ptrace and
# /proc/<pid>/mem checks are disturbed by ASan, so they all run.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib.sh
. scripts/lib.sh
setenv() {
    printf '+ export %s=%q\n' "$1" "$2"
    export "$1=$2"
}

TARGET=x86_64-unknown-linux-gnu

# Tests that AddressSanitizer makes meaningless, with why.
SKIP=(
    # Exhausts vm.max_map_count on purpose; ASan then cannot map its shadow
    # memory ("ReserveShadowMemoryRange failed ... errno 12") and aborts the
    # child before memguard can report the error the test expects.
    map_count_exhaustion_fails_cleanly_and_purge_gives_everything_back
    # Scans the child's memory for leftover plaintext. ASan's fake stacks
    # (detect_stack_use_after_return) keep dead stack frames, here a 64-byte
    # XSalsa20 block of the secret, where a native stack is reused; and with
    # them off, scanning a child with ASan's shadow mappings outlasts the
    # test's 25 s child timeout.
    no_plaintext_left_behind_for_a_multi_block_secret
    # Reads the stack below its own frame, dead memory that ASan's stack
    # instrumentation poisons (and its fake stacks move elsewhere); it runs
    # natively. So does the scrub-depth test, for the same reason.
    the_stack_scrub_wipes_what_the_cipher_left_on_the_stack
    the_scrub_reaches_deeper_than_a_seal_or_an_open_goes
    # A forked child ends with safe_exit, so LeakSanitizer runs in it and
    # counts the allocations of the parent's threads (which the child does
    # not have) as leaks ("Running thread ... was not suspended").
    a_forked_child_drops_inherited_buffers_purges_and_exits
)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    run rustup toolchain install nightly --profile minimal
fi
run cargo +nightly --version

setenv RUSTFLAGS "-Zsanitizer=address"
setenv RUSTDOCFLAGS "-Zsanitizer=address"
setenv CARGO_TARGET_DIR "$PWD/target/asan"
leaks=1
if [ "$(id -u)" != 0 ]; then
    echo "not root: LeakSanitizer cannot ptrace the hardened (non-dumpable) test processes; leak detection off"
    leaks=0
fi
setenv ASAN_OPTIONS "handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:detect_leaks=$leaks"
setenv LSAN_OPTIONS "suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0"

skip_args=()
for t in "${SKIP[@]}"; do
    skip_args+=(--skip "$t")
done

# A test target must be named for -Zsanitizer (so that build scripts and
# proc macros are built without it).
run cargo +nightly build -p memguard-enclave --target "$TARGET" --examples
run cargo +nightly test -p memguard-enclave --target "$TARGET" --lib --tests --no-fail-fast \
    -- "${skip_args[@]}"
echo "asan: passed (skipped: ${SKIP[*]})"
