/* bcryptprimitives.dll for Debian's wine 8, which lacks it: Rust's standard library on Windows
 * (since 1.78) takes its random bytes from ProcessPrng there, so every Rust test binary fails to
 * load under that wine. This DLL gives ProcessPrng from RtlGenRandom (advapi32's
 * SystemFunction036), which wine has. Only for running odai's Windows tests under wine
 * (scripts/test.sh); Windows itself has the real DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk;
    length -= chunk;
  }
  return TRUE;
}
