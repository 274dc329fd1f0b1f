#!/usr/bin/env bash
# The unit tests and a selection of integration tests under valgrind's
# memcheck (stable Rust, the ordinary debug test build).
#
#   scripts/valgrind.sh
#
# Build: memguard enables `rustix/use-libc-auxv` itself (Cargo.toml); the
# flag below only restates it. Without it rustix reads the aux
# vector straight from the kernel (prctl PR_GET_AUXV) and finds the vDSO
# there; valgrind does not map the vDSO for the program it runs, so the
# first rustix::param::page_size() dies of SIGSEGV in rustix's
# check_elf_base (rustix issue #1559). With the feature rustix asks libc's
# getauxval, which valgrind has rewritten. Only rustix and memguard are
# rebuilt for it; the artifacts sit beside the normal ones in target/debug.
#
# Children are not traced (no --trace-children): a test that re-runs its
# binary as a child checks only the parent under valgrind, so the binaries
# whose tests all work through children are left out (see BINARIES).
# valgrind 3.19 passes madvise(MADV_WIPEONFORK) through to the kernel (the
# fork-policy test sees WipeOnFork); nothing falls back to MADV_DONTFORK.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib.sh
. scripts/lib.sh

# The test binaries run, and the tests skipped in each, with why. Left out
# entirely, as every test in them runs the crate in a child process (that
# valgrind would not see) and judges its death, ptrace stops, memory maps
# or output: crash (ptrace, SIGSEGV deaths), protections (guard-page and
# canary deaths, smaps, fork), signals (signal deliveries), hardening_race,
# examples (runs the example programs), outside (ptrace, /proc/<pid>/mem,
# core dumps, rlimit exhaustion).
BINARIES=(memguard locked_buffer concurrency session enclave stream)
declare -A SKIP=(
    [memguard]="
        covers_the_data_pages_and_their_guard_pages
        forget_all_clears_every_slot_and_remove_still_frees_it
        wipe_all_reaches_a_segment_published_out_of_order
        wipe_all_skips_an_unmapped_slot_wipes_the_others_and_allocates_nothing
        every_length_up_to_2048_on_every_path
        random_lengths_up_to_1_mib_at_random_positions
        lengths_around_every_64_256_and_512_byte_boundary
        secretbox_matches_libsodium_on_random_keys_nonces_and_messages
        the_stack_scrub_wipes_what_the_cipher_left_on_the_stack
        the_scrub_reaches_deeper_than_a_seal_or_an_open_goes"
    [locked_buffer]=""
    [concurrency]="
        purge_during_reading_constructor_growth_is_an_error_not_a_panic"
    [session]="
        enclave_new_never_fails_with_destroyed_during_a_concurrent_purge"
    [enclave]="
        sixteen_mib_new_open_and_open_into_round_trip
        sixteen_mib_seal_and_random_round_trip"
    [stream]="
        random_operations_match_a_vec_model_with_one_byte_chunks
        random_operations_match_a_vec_model_with_seven_byte_chunks
        random_small_reads_match_a_vec_model_with_1000_byte_chunks
        random_small_reads_match_a_vec_model_with_default_chunks"
)
# Why:
# - memguard/crash_table's four fork tests: each runs its scenario in a
#   forked child that ends with _exit and reports through its exit code.
#   valgrind follows the fork and checks the child for leaks too (the
#   allocations of the parent's other threads, which the child does not
#   have, look lost), and makes its exit code 99.
# - memguard/crypto::salsa20's three differential sweeps and the random
#   libsodium comparison: 6-10 s each natively (debug), together over 10
#   minutes here. Every keystream path valgrind can run (AVX2, SSE2,
#   portable; its CPU has no AVX-512, so that path is not offered) still runs
#   under valgrind through the known-answer vectors, the offsets into a
#   block, the block-counter carry test, the libsodium block-counter test
#   and the cipher's reference test; the sweeps run natively in the test
#   stage and in the keystream fuzz target.
# - memguard/crypto::cipher's stack-scrub test, and enclave's scrub-depth
#   test, read the stack below their own frame, which memcheck reports as
#   an invalid read below the stack pointer (it is meant to: that memory is
#   dead); they run natively.
# - concurrency/purge_during_reading_constructor_growth_is_an_error_not_a_panic:
#   cannot work under valgrind, which runs one thread at a time: the purging
#   thread busy-waits, and the 3000 calls overrun the test's own 60 s
#   deadlock timeout (seen: "did not finish within 60 s"), or pass in 25 s,
#   depending on scheduling.
# - session/enclave_new_never_fails_with_destroyed_during_a_concurrent_purge:
#   a race that needs truly parallel threads; 20-70 s serialised.
# - enclave/sixteen_mib_*: the work runs in a child process (not traced).
# - stream: the same model-based test with 1- and 7-byte chunks takes
#   25-135 s; the 4096-byte and default chunk sizes stay. The model-based
#   small-read tests take 3-6 s natively and over 3 minutes each here; the
#   small-read paths (a chunk opened once into guarded memory, then copied
#   from) run here through the unit tests in src/stream.rs.
# Everything else in these binaries runs, about 2 minutes in all.

if ! command -v valgrind >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        run apt-get update
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind
    else
        echo "valgrind is not installed (and this script can install it only as root with apt-get)" >&2
        exit 1
    fi
fi
run valgrind --version
run cargo --version

json=$(mktemp)
trap 'rm -f "$json"' EXIT
run cargo test -p memguard-enclave --lib --tests --no-run --features rustix/use-libc-auxv \
    --message-format=json >"$json"

# The path of the test binary for target $1, from cargo's JSON messages.
executable() {
    grep '"reason":"compiler-artifact"' "$json" |
        grep '"test":true' |
        grep "\"name\":\"$1\"" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' |
        head -n 1
}

failed=()
for name in "${BINARIES[@]}"; do
    exe=$(executable "$name")
    if [ -z "$exe" ]; then
        echo "no test binary for $name in cargo's output" >&2
        failed+=("$name (not built)")
        continue
    fi
    args=(--test-threads=1)
    for t in ${SKIP[$name]}; do
        args+=(--skip "$t")
    done
    start=$SECONDS
    if ! run valgrind --tool=memcheck --error-exitcode=99 --errors-for-leak-kinds=definite \
        --leak-check=full --show-leak-kinds=definite -q "$exe" "${args[@]}"; then
        failed+=("$name")
    fi
    echo "    [$name: $((SECONDS - start)) s]"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "valgrind: FAILED: ${failed[*]}"
    exit 1
fi
echo "valgrind: passed"
