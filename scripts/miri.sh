#!/usr/bin/env bash
# The pure logic under Miri (nightly Rust), with the system calls behind the
# cfg(miri) backend in src/mem/sys/miri.rs: pages from the global allocator,
# protection/locking/advice no-ops, no process hardening, no crash handler.
#
#   scripts/miri.sh
#
# Three runs, about 3-4 minutes in all on 2 cores:
#   1. unit tests of the memory layer (layout, canary, borrow state, lease,
#      crash table, wipe), of reads under a buffer's lease, and of error
#      formatting, with Miri's leak check;
#   2. unit tests that use the session key (coffer, enclave, stream chunk
#      bookkeeping), which starts the detached rekeying thread;
#   3. tests/locked_buffer.rs: every path through Region, Ref/RefMut, the
#      views, the reading constructors and the registry.
#
# MIRIFLAGS:
#   -Zmiri-strict-provenance: no integer-to-pointer casts in the code these
#     tests reach (the crash table stores addresses as integers, but only
#     the crash handler turns them back into pointers, and it is not
#     installed under Miri).
#   -Zmiri-ignore-leaks (run 2 only): the session key's rekeying thread is
#     detached by design and still parked when main returns, which Miri
#     reports as "the main thread terminated without waiting for all
#     remaining threads"; the flag also turns off the memory-leak check,
#     which is why run 1 and 3 are separate and keep it.
# Isolation stays on: getrandom and the monotonic clock work under it.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib.sh
. scripts/lib.sh

STRICT="-Zmiri-strict-provenance"

# Run 1: the memory layer, with the leak check.
MEM_FILTERS=(mem:: buffer::locked_buffer::tests:: error:: crypto::salsa20::tests::every_path_is_tested_here crypto::poly1305_64::)
MEM_SKIP=(
    # 200 rounds of 4 threads on one atomic word (~80 s under Miri); no
    # unsafe code. Threads sharing a buffer run in run 3.
    mem::borrow::tests::racing_threads_elect_exactly_one_destroyer
)

# Run 2: the session key and what uses it.
KEY_FILTERS=(coffer:: enclave:: stream::)
KEY_SKIP=(
    # Every length up to a few KiB sealed and opened: >400 s under Miri.
    enclave::tests::round_trip_and_wipe
    # Flips every bit of a sealed enclave, one open each: ~170 s.
    enclave::tests::tampering_anywhere_fails_and_dst_is_untouched
    # 50 000-byte streams read in many buffer sizes: far too slow; the other
    # stream tests cover the same chunk bookkeeping on small inputs.
    stream::tests::reads_in_any_buffer_size_give_back_the_bytes_in_order
    # 64 KiB read in twelve buffer sizes down to one byte (65 536 reads):
    # far too slow; the small-chunk stream tests reach the same opened-chunk
    # paths.
    stream::tests::a_chunk_is_authenticated_once_or_twice_whatever_the_read_size
    # Chunk bookkeeping in safe code (dropping failed chunks, counting
    # buffers, chunk sizes), 14-60 s each under Miri (157 s together,
    # measured with --report-time). The opened-chunk, lease and reuse paths
    # stay: the_buffer_kept_for_the_next_chunk_is_wiped_and_reused,
    # partial_read_keeps_the_rest_at_the_front and the smaller tests here,
    # and run 1's lease and locked-buffer tests.
    stream::tests::an_emptied_stream_keeps_no_buffer
    stream::tests::next_chunk_and_drain_after_partial_reads
    stream::tests::consecutive_failing_chunks_are_dropped_by_one_failing_call
    stream::tests::chunk_size_really_applies
    stream::tests::a_read_returns_what_it_copied_then_reports_a_tampered_chunk_once
    stream::tests::drain_drops_every_failing_chunk_and_the_next_drain_returns_the_rest
)
# Of crypto::, run 1 also takes the crate's Poly1305
# (src/crypto/poly1305_64.rs): plain 64-bit safe code, the same on every
# machine and all that is compiled under cfg(miri) (its tests shrink their
# lengths under cfg(miri)). Its AVX2 bulk code (src/crypto/poly1305_avx2.rs,
# intrinsics) is not compiled under Miri; it is checked like the keystream's
# vector paths below (differential tests, the poly1305 fuzz target).
# Not run at all: the rest of crypto::. The Salsa20 keystream's vector paths
# (src/crypto/salsa20/{sse2,avx2,neon}.rs; with poly1305_avx2.rs the crate's
# only unsafe outside the memory layer) are SIMD intrinsics (and, on the
# AVX-512VL path, one asm! block), which Miri cannot run: under
# cfg(miri) they are not compiled and the portable path (RustCrypto's
# salsa20) is the only one; run 1 checks that with
# crypto::salsa20::tests::every_path_is_tested_here. The vector paths are
# checked instead by the differential tests against RustCrypto and
# libsodium on every path the machine has (cargo test) and by the keystream
# fuzz target under AddressSanitizer (scripts/fuzz.sh). The cipher, hash
# and constant-time tests take minutes in Miri and check the dependencies
# more than this crate.

# Run 3: tests/locked_buffer.rs.
LB_SKIP=(
    # Not testable on the Miri backend:
    # - the backend applies no process hardening;
    hardening_is_applied_on_first_allocation_and_then_locked_in
    # - Miri stops with "resource exhaustion" on a huge allocation where
    #   mmap would fail with ENOMEM and the crate would return an error;
    new_of_huge_sizes_errors_without_panicking
    # - these re-run the test binary as a child process.
    state_and_access_after_destroy
    views_on_a_destroyed_buffer_are_destroyed
    # Too slow under Miri (each over 30 s, up to several minutes); smaller
    # tests cover the same paths:
    from_entire_reader_almost_one_mib_in_odd_chunks
    reading_constructors_handle_more_than_a_page_left_over
    from_reader_until_long_input_over_two_pages
    integer_slices_match_native_endian_bytes
    from_entire_reader_small_and_page_boundaries
    scramble_bytes_and_wipe_bytes_free_functions
)

skips() {
    for t in "$@"; do
        printf -- '--skip\n%s\n' "$t"
    done
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    run rustup toolchain install nightly --profile minimal --component miri --component rust-src
else
    run rustup component add --toolchain nightly miri rust-src
fi
run cargo +nightly miri --version
run cargo +nightly miri setup

failed=()
miri() {
    local name=$1 flags=$2
    shift 2
    printf '+ MIRIFLAGS=%q\n' "$flags"
    if ! MIRIFLAGS="$flags" run cargo +nightly miri test -p memguard-enclave "$@"; then
        failed+=("$name")
    fi
}

mapfile -t mem_skip < <(skips "${MEM_SKIP[@]}")
mapfile -t key_skip < <(skips "${KEY_SKIP[@]}")
mapfile -t lb_skip < <(skips "${LB_SKIP[@]}")

miri "memory layer" "$STRICT" --lib -- "${MEM_FILTERS[@]}" "${mem_skip[@]}"
miri "session key" "$STRICT -Zmiri-ignore-leaks" --lib -- "${KEY_FILTERS[@]}" "${key_skip[@]}"
miri "locked_buffer" "$STRICT" --test locked_buffer -- "${lb_skip[@]}"

if [ ${#failed[@]} -gt 0 ]; then
    echo "miri: FAILED: ${failed[*]}"
    exit 1
fi
echo "miri: passed"
