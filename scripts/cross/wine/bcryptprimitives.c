/*
 * bcryptprimitives.dll for wine 8.0, which has none: Rust's std (since 1.78)
 * imports ProcessPrng from it to seed its hash maps and for getrandom, so
 * without this DLL every Rust program fails to load under Debian 12's wine.
 *
 * ProcessPrng fills the buffer from RtlGenRandom (advapi32's
 * SystemFunction036), wine's system random source, in chunks of at most
 * ULONG_MAX bytes. Like the real one, it always returns TRUE.
 *
 * Built at CI time by scripts/cross/wine.sh with mingw-w64 and copied into
 * the wine prefix's system32; never part of the crate or a Windows build.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0xFFFFFFFFu ? 0xFFFFFFFFu : (ULONG)len;
        if (!SystemFunction036(data, chunk)) {
            /* The real ProcessPrng cannot fail; neither may this one. */
            RaiseException(0xC0000001 /* STATUS_UNSUCCESSFUL */, EXCEPTION_NONCONTINUABLE, 0, NULL);
        }
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
