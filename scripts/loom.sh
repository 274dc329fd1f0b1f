#!/usr/bin/env bash
# Model check of the borrow/destroy/purge protocol with loom: the unit
# tests in src/mem/borrow_loom.rs run readers, a writer, destroy and purge
# under every interleaving of their threads and fail if a guard sees wiped
# or unmapped memory, if a reader overlaps the writer or the destroyer, or
# if a region is destroyed other than exactly once. The models in
# src/mem/lease_loom.rs do the same for reads under a lease against a
# revoking purge, and src/mem/slab_loom.rs for compact slots.
#
#   scripts/loom.sh
#
# Builds the lib's unit tests with --cfg loom in target/loom (loom is a
# dev-dependency only under that cfg). On 2 cores: 1.5-2 minutes from a
# cold cache (the build 50-90 s, the models 30-45 s), the models alone when
# warm. Eight models are exhaustive; the five-thread one explores up to two
# preemptions. To keep the cold build short, the dependencies
# are built unoptimised and without debug info (the crypto ones are not
# used by the models), except loom and what it runs on, which do the work.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
export RUSTFLAGS="--cfg loom"
export CARGO_TARGET_DIR=target/loom
# These would override RUSTFLAGS or bound the search: the models are meant
# to be exhaustive.
unset CARGO_ENCODED_RUSTFLAGS LOOM_MAX_PREEMPTIONS LOOM_MAX_PERMUTATIONS \
    LOOM_MAX_DURATION LOOM_MAX_BRANCHES LOOM_CHECKPOINT_FILE

profile=(
    --config 'profile.dev.debug=false'
    --config 'profile.dev.package."*".opt-level=0'
)
for fast in loom generator scoped-tls tracing tracing-core tracing-subscriber; do
    profile+=(--config "profile.dev.package.$fast.opt-level=3")
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo "${profile[@]}" test --lib loom_model -- --test-threads 2 --nocapture 2>&1 |
    tee "$log" || status=$?

# A filter that matches nothing must not pass: count the models that ran.
passed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed;.*/\1/p' "$log" | tail -n 1)
passed=${passed:-0}
echo
if [ "$status" -ne 0 ]; then
    echo "loom: FAILED ($((SECONDS - started)) s)"
    exit 1
fi
if [ "$passed" -eq 0 ]; then
    echo "loom: no model ran (is the test filter right?)" >&2
    exit 1
fi
echo "loom: $passed models passed in $((SECONDS - started)) s"
