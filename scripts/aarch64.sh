#!/usr/bin/env bash
# The test suite for aarch64 Linux, run under qemu-user on this x86_64
# machine (about 9x slower than native), trimmed to what the platform
# changes:
#
#   scripts/aarch64.sh
#
# What runs (cargo test --target aarch64-unknown-linux-gnu):
#   --lib               the unit tests, above all crypto::salsa20 (the NEON
#                       keystream, src/crypto/salsa20/neon.rs, differential
#                       against the portable path and RustCrypto: issue 13),
#                       and the memory layer (mem::) on aarch64;
#   locked_buffer       layout, guard and page arithmetic;
#   protections         guard pages, frozen buffers and the canary: the
#                       children must die of SIGSEGV / SIGABRT on aarch64;
#   crash               the crash handler (signal frames, fault addresses,
#                       sigaltstack differ per architecture);
#   spares, signals,    spare mappings, signal delivery, the hardening race,
#   hardening_race,     and the conveniences (serde off).
#   conveniences
# Not run here, as the architecture does not change them (they run natively
# in .ci/run) or qemu-user cannot run them:
#   enclave, stream, session: the session key and cipher above the memory
#     layer (the cipher's aarch64 path is tested by --lib);
#   concurrency: portable atomics; qemu on an x86_64 host executes them with
#     x86's stronger memory ordering, so it could not find an aarch64
#     weak-memory bug anyway (only real hardware can);
#   examples and the memguard command (cli): no architecture-specific code;
#   outside: every test either ptraces a child or reads its memory through
#     /proc/<pid>/mem, i.e. qemu's own address space (no ptrace under qemu);
#   fork: qemu-user 7.2 aborts in the forked child of a multi-threaded
#     process ("qemu_plugin_vcpu_init_hook: assertion failed", then "cpu ==
#     current_cpu"), and MADV_WIPEONFORK/DONTFORK are not applied anyway.
#
# Tests that re-run their own binary (tests/support) start an aarch64
# executable directly: qemu-aarch64 is registered with binfmt_misc for the
# run (flag F: the interpreter is opened at registration, so it works in any
# mount namespace) and unregistered on exit, also on failure. An existing
# qemu-aarch64 registration (Debian's qemu-user-binfmt) is used as it is.
#
# Our crate is built at opt-level 1 (CARGO_PROFILE_DEV_OPT_LEVEL; the
# dependencies are at 3 already, see Cargo.toml), debug assertions and
# overflow checks kept: under qemu the unit tests then take ~10 s instead of
# ~120 s (the salsa20 differential tests walk every length on every path).
# Builds into target/aarch64-unknown-linux-gnu.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
TESTS=(locked_buffer protections crash spares signals hardening_race conveniences)

# Tests qemu-user cannot run, with why.
SKIP=(
    # qemu-user implements madvise as a no-op: no MADV_DONTDUMP or
    # MADV_WIPEONFORK, so smaps shows neither `dd` nor `wf`, and a forked
    # child reads the data (qemu also aborts in that forked child, see fork
    # above).
    smaps_shows_locked_undumped_fork_wiped_data_between_guard_pages
    forked_child_sees_zeros_instead_of_buffer_data
    # No ptrace under qemu-user (PTRACE_TRACEME fails with ENOSYS): the five
    # traced crash tests.
    traced_write_past_the_end_wipes_the_secret_before_dying
    traced_write_to_a_frozen_buffer_wipes_the_secret_before_dying
    traced_scanner_finds_a_copy_left_outside_guarded_memory
    traced_foreign_fault_wipes_the_secret_before_dying
    traced_stack_overflow_wipes_the_secret_before_std_aborts
    # qemu-user 7.2 does not implement the terminal ioctls rustix's
    # tcgetattr uses on a pty (TCGETS2: ENOSYS, or EIO as seen since the
    # test moved to the platform layer); the terminal code has nothing
    # architecture-specific. (Named without its module path, which the
    # platform seam changed once already.)
    terminal::tests::prompt_turns_echo_off_and_back_on
)

# shellcheck source=lib.sh
. scripts/lib.sh

for tool in qemu-aarch64 aarch64-linux-gnu-gcc; do
    command -v "$tool" >/dev/null || {
        echo "aarch64.sh: $tool not found (run scripts/cross/install.sh)" >&2
        exit 1
    }
done

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
export CARGO_PROFILE_DEV_OPT_LEVEL=1
# No aarch64 libsodium here: its tests pass with a note instead of failing
# (they run natively, where .ci/run requires libsodium).
unset MEMGUARD_REQUIRE_LIBSODIUM

# binfmt_misc: register qemu-aarch64 for aarch64 ELF executables.
BINFMT=/proc/sys/fs/binfmt_misc
ENTRY=memguard-qemu-aarch64
registered=""
unregister() {
    if [ -n "$registered" ] && [ -e "$BINFMT/$ENTRY" ]; then
        echo -1 >"$BINFMT/$ENTRY" || true
        echo "binfmt_misc: $ENTRY unregistered"
    fi
}
trap unregister EXIT
if ! mountpoint -q "$BINFMT"; then
    run mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
if grep -qs 'interpreter .*qemu-aarch64' "$BINFMT"/*; then
    echo "binfmt_misc: qemu-aarch64 is already registered; using that entry"
else
    [ -e "$BINFMT/$ENTRY" ] && echo -1 >"$BINFMT/$ENTRY"
    magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    printf ':%s:M::%s:%s:%s:F\n' "$ENTRY" "$magic" "$mask" "$(command -v qemu-aarch64)" >"$BINFMT/register"
    registered=1
    echo "binfmt_misc: $ENTRY registered (flag F)"
fi
qemu_version=$(qemu-aarch64 --version)
echo "${qemu_version%%$'\n'*}"

skip_args=()
for t in "${SKIP[@]}"; do
    skip_args+=(--skip "$t")
done
test_args=(--lib)
for t in "${TESTS[@]}"; do
    test_args+=(--test "$t")
done

run cargo test -p memguard-enclave --target "$TARGET" --no-fail-fast "${test_args[@]}" \
    -- "${skip_args[@]}"
echo "aarch64 (qemu-user): passed (skipped: ${SKIP[*]})"
