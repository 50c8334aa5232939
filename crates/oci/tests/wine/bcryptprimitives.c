/* Wine 8.0 (Debian 12) has no bcryptprimitives.dll, which Rust's std
   (>= 1.78) imports for ProcessPrng. This stand-in forwards to
   RtlGenRandom (advapi32 SystemFunction036), which wine implements. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
