#!/usr/bin/env bash
# Compile checks for the platforms that cannot run here: the workspace (the
# library, its tests, examples and benches, and the memguard command) must
# build warning-free for each, so that a change that breaks macOS, FreeBSD,
# OpenBSD or Windows fails CI even though no test of theirs runs.
#
#   scripts/compile-checks.sh [TARGET...]   (default: all of them)
#
# - clippy, --all-targets, -D warnings (the lints of .ci/run's own clippy
#   stage) for x86_64-apple-darwin, aarch64-apple-darwin,
#   x86_64-unknown-freebsd, x86_64-pc-windows-msvc, x86_64-pc-windows-gnu and
#   aarch64-unknown-linux-gnu (the std of each is installed by
#   scripts/cross/install.sh). Checking needs no linker, so no SDK.
# - OpenBSD is a tier-3 target without a prebuilt std: the library only, with
#   `cargo +nightly check -Zbuild-std=std,panic_abort` (nightly's rust-src).
#   Its dev-dependencies (criterion, ...) are not all checked there.
#
# Every check runs even if one fails; the exit status says whether any did.
# About 2 minutes on 2 cores from a cold cache: the dependencies are checked
# (metadata only) once per target.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIPPY_TARGETS=(
    x86_64-apple-darwin
    aarch64-apple-darwin
    x86_64-unknown-freebsd
    x86_64-pc-windows-msvc
    x86_64-pc-windows-gnu
    aarch64-unknown-linux-gnu
)
BUILD_STD_TARGETS=(x86_64-unknown-openbsd)

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=("${CLIPPY_TARGETS[@]}" "${BUILD_STD_TARGETS[@]}")
fi

# shellcheck source=lib.sh
. scripts/lib.sh

failed=()
summary=()
for t in "${targets[@]}"; do
    start=$SECONDS
    if printf '%s\n' "${BUILD_STD_TARGETS[@]}" | grep -qx "$t"; then
        what="cargo +nightly check -Zbuild-std (library)"
        ok=0
        run cargo +nightly check -p memguard-enclave --lib --all-features \
            -Zbuild-std=std,panic_abort --target "$t" || ok=$?
    else
        what="cargo clippy --all-targets"
        ok=0
        run cargo clippy --workspace --all-targets --all-features --target "$t" -- -D warnings || ok=$?
    fi
    if [ "$ok" = 0 ]; then
        summary+=("$(printf '%-28s ok      %4d s  (%s)' "$t" $((SECONDS - start)) "$what")")
    else
        summary+=("$(printf '%-28s FAILED  %4d s  (%s)' "$t" $((SECONDS - start)) "$what")")
        failed+=("$t")
    fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "compile checks: FAILED: ${failed[*]}"
    exit 1
fi
echo "compile checks: all passed"
