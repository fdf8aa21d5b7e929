# Sourced by scripts that build and test for aarch64 here, under qemu-user (issue 13): a
# static build (-C target-feature=+crt-static: a dynamic one needs the arm64 loader, and mixing
# two glibc builds hangs at thread spawn), Debian's cross gcc as linker and C compiler (ring),
# and qemu-aarch64 as the test runner. QEMU_CPU picks the emulated core: `max` has dotprod,
# `cortex-a53` does not.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
