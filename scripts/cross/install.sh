#!/usr/bin/env bash
# Installs what the cross-platform stages need, idempotently (a second run
# installs nothing and takes a second or two):
#
#   scripts/cross/install.sh
#
# - Debian packages: wine64 and wine (Windows tests), gcc-mingw-w64-x86-64
#   (the linker of x86_64-pc-windows-gnu, and the ProcessPrng shim DLL),
#   qemu-user (aarch64 tests), gcc-aarch64-linux-gnu and
#   libc6-dev-arm64-cross (the aarch64 linker and its libc).
# - rustup targets: x86_64-pc-windows-gnu and -msvc, x86_64- and
#   aarch64-apple-darwin, x86_64-unknown-freebsd, aarch64-unknown-linux-gnu,
#   and clippy (for the compile checks).
# - nightly with rust-src (OpenBSD is a tier-3 target: -Zbuild-std).
#
# Needs root for apt-get (CI runs as root); as another user, install the
# packages yourself and the script checks them only.
set -euo pipefail
cd "$(dirname "$0")/../.."

started=$SECONDS
# shellcheck source=../lib.sh
. scripts/lib.sh

PACKAGES=(
    wine64 wine
    gcc-mingw-w64-x86-64
    qemu-user
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross
)
TARGETS=(
    x86_64-pc-windows-gnu
    x86_64-pc-windows-msvc
    x86_64-apple-darwin
    aarch64-apple-darwin
    x86_64-unknown-freebsd
    aarch64-unknown-linux-gnu
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install.sh: missing Debian packages (install them as root): ${missing[*]}" >&2
        exit 1
    fi
    # Another apt run (a parallel CI job) may hold the lock: wait for it.
    run apt-get -o DPkg::Lock::Timeout=600 update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}"
else
    echo "Debian packages: all present (${PACKAGES[*]})"
fi

installed=$(rustup target list --installed)
need=()
for t in "${TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed" || need+=("$t")
done
if [ ${#need[@]} -gt 0 ]; then
    run rustup target add "${need[@]}"
else
    echo "rustup targets: all present"
fi
cargo clippy --version >/dev/null 2>&1 || run rustup component add clippy

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    run rustup toolchain install nightly --profile minimal --component rust-src
elif ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    run rustup component add --toolchain nightly rust-src
else
    echo "nightly with rust-src: present"
fi

echo "install.sh: done in $((SECONDS - started)) s"
