/* A stand-in for MSVC's malloc.h, so `cargo check --target x86_64-pc-windows-msvc` can compile
 * alloca's C (criterion's, a dev-dependency) here with clang (scripts/cross-env.sh): _alloca is
 * clang's builtin in MSVC mode. Never used to build a binary that runs. */
#pragma once
#define _alloca __builtin_alloca
