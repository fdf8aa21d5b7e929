/* A stand-in for MSVC's stdlib.h, so `cargo check --target x86_64-pc-windows-msvc` can compile
 * ring's C here with clang (scripts/cross-env.sh): ring includes it only for _byteswap_ulong,
 * which clang provides as a builtin in MSVC mode. Never used to build a binary that runs. */
#pragma once
unsigned long _byteswap_ulong(unsigned long);
