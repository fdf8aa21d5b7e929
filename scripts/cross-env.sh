# Sourced by scripts/test.sh before it checks odai for macOS and Windows (issue 17): what C the
# dependencies compile (ring's) is compiled by clang for those targets. Linking for them is not
# possible here (no Apple SDK, no MSVC libraries), checking is: `cargo check`/`clippy` compile
# every crate to metadata, but build scripts still run, and ring's compiles its C. clang has the
# freestanding headers (stddef.h, stdint.h); ring's RING_CORE_NOSTDLIBINC leaves out the libc
# ones; scripts/cross-include holds one-file stand-ins for the few SDK headers the C still names
# (ring's TargetConditionals.h and stdlib.h; the dev-dependencies' windows.h and malloc.h).
# Windows-gnu needs none of this: Debian's mingw-w64 gcc is a complete toolchain (it links too).
cross_include="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cross-include"
for t in aarch64_apple_darwin x86_64_apple_darwin; do
  export "CC_$t=clang" "AR_$t=llvm-ar" \
    "CFLAGS_$t=-ffreestanding -DRING_CORE_NOSTDLIBINC -I$cross_include/apple"
done
export CC_x86_64_pc_windows_msvc=clang AR_x86_64_pc_windows_msvc=llvm-ar \
  "CFLAGS_x86_64_pc_windows_msvc=-ffreestanding -DRING_CORE_NOSTDLIBINC -I$cross_include/msvc"
# Windows-gnu: mingw-w64's gcc links, and wine64 (where installed) runs the tests.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
if command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ]; then
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$(command -v wine64 || echo /usr/lib/wine/wine64)"
fi
unset cross_include
