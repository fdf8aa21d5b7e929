/* A stand-in for the Windows SDK's windows.h, so `cargo check --target x86_64-pc-windows-msvc`
 * can compile stacker's one C function here with clang (scripts/cross-env.sh; stacker comes with
 * insta's pest, a dev-dependency). Never used to build a binary that runs. */
#pragma once
typedef void *PVOID;
PVOID GetCurrentFiber(void);
