/* A stand-in for the Apple SDK's TargetConditionals.h, so `cargo check --target *-apple-darwin`
 * can compile ring's C here (scripts/cross-env.sh): only the macros ring reads, with macOS's
 * values. Never used to build a binary that runs: linking for Apple needs the real SDK. */
#pragma once
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
