#!/usr/bin/env bash
# Sourced (`. scripts/cross/wine.sh`) by the scripts that run Windows
# programs under wine (scripts/windows.sh): sets up the environment, the
# wine prefix, the ProcessPrng shim and a persistent wineserver, and exports
# CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER so that `cargo test --target
# x86_64-pc-windows-gnu` runs each test binary under wine. Idempotent: a
# second source reuses the prefix and the running wineserver.
#
# Environment (all exported):
#   WINEPREFIX        default: target/wine-prefix (created on first use with
#                     wineboot, about 10-20 s)
#   WINEARCH=win64    64-bit only (Debian's wine64; no wine32 needed)
#   WINEDEBUG=-all    wine's own diagnostics off (they go to stderr, where
#                     the tests read their children's output)
#   WINEDLLOVERRIDES  winedbg.exe=d: a crashing program would otherwise start
#                     the debugger (1-3 s per crash, and it hangs under a
#                     pty); mscoree, mshtml off: wineboot would offer to
#                     download Mono and Gecko
#   WINELOADER        wine64 itself, not Debian's /usr/bin/wine wrapper
#
# The shim: Debian 12's wine 8.0 has no bcryptprimitives.dll, whose
# ProcessPrng Rust's std imports since 1.78, so every Rust program fails to
# load. scripts/cross/wine/bcryptprimitives.c provides it (forwarding to
# RtlGenRandom); it is built here with mingw-w64 into target/wine-shim and
# copied into the prefix's system32.
#
# The wineserver: started once (`wineserver -p`, persistent) with its output
# sent to a log file. Without it, each program starts its own and the last
# one to exit leaves it running with the caller's stdout/stderr inherited,
# which hangs a pipeline (`... | tail`) until it times out. Call
# `wine_stop` (or let the sourcing script's EXIT trap do it) to end it.
_wine_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

export WINEPREFIX="${WINEPREFIX:-$_wine_root/target/wine-prefix}"
export WINEARCH=win64
export WINEDEBUG=-all
export WINEDLLOVERRIDES="winedbg.exe=d;mscoree=d;mshtml=d"
export WINELOADER=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver64
[ -x "$WINESERVER" ] || WINESERVER=/usr/lib/wine/wineserver
export WINESERVER
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$WINELOADER"

wine_setup() {
    local shim_dir="$_wine_root/target/wine-shim" src="$_wine_root/scripts/cross/wine"
    local dll="$shim_dir/bcryptprimitives.dll" sys32="$WINEPREFIX/drive_c/windows/system32"
    [ -x "$WINELOADER" ] || {
        echo "wine.sh: $WINELOADER not found (run scripts/cross/install.sh)" >&2
        return 1
    }
    # The server first: wineboot then uses it instead of leaving its own.
    mkdir -p "$WINEPREFIX" "$shim_dir"
    # Exits at once, harmlessly, when this prefix's server is already up.
    "$WINESERVER" -p >>"$shim_dir/wineserver.log" 2>&1 </dev/null || true
    # wineboot writes the registry files lazily: a stamp says it finished.
    if [ ! -f "$WINEPREFIX/.memguard-wineboot" ]; then
        printf '+ wineboot --init (WINEPREFIX=%s)\n' "$WINEPREFIX"
        local t=$SECONDS
        "$WINELOADER" wineboot --init >>"$shim_dir/wineboot.log" 2>&1 </dev/null
        touch "$WINEPREFIX/.memguard-wineboot"
        echo "    (prefix created in $((SECONDS - t)) s)"
    fi
    if [ ! -f "$dll" ] || [ "$src/bcryptprimitives.c" -nt "$dll" ] || [ "$src/bcryptprimitives.def" -nt "$dll" ]; then
        printf '+ x86_64-w64-mingw32-gcc ... -o %s\n' "$dll"
        x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -shared -s -o "$dll" \
            "$src/bcryptprimitives.c" "$src/bcryptprimitives.def" -ladvapi32
    fi
    cmp -s "$dll" "$sys32/bcryptprimitives.dll" || cp "$dll" "$sys32/bcryptprimitives.dll"
    # Start wine's own services (services.exe, winedevice, rpcss, ...) now,
    # with /dev/null for their output. Otherwise the first Windows program
    # starts them and they inherit its stdout and stderr: when that program
    # is a doctest, whose output rustdoc reads from a pipe, rustdoc waits
    # for the end of that pipe for as long as the services run.
    "$WINELOADER" cmd /c exit 0 >>"$shim_dir/wineboot.log" 2>&1 </dev/null
}

wine_stop() {
    "$WINESERVER" -k 2>/dev/null || true
}
