#!/usr/bin/env bash
# Static odai binaries for the devices a farm deploys to, one per target triple, written as
# target/device-binaries/odai-TRIPLE (what `odai farm deploy --binaries DIR` reads):
#
#   aarch64-unknown-linux-musl      phones over adb (Android's kernel is Linux), Raspberry Pi OS
#                                   64-bit, Jetson's L4T, musl and busybox boards
#   armv7-unknown-linux-musleabihf  32-bit Arm boards and Raspberry Pi OS 32-bit
#   x86_64-unknown-linux-musl       any x86-64 Linux, whatever its libc
#
# Static musl binaries need nothing from the device (no loader, no libc of a given version).
# What they cannot do is dlopen: ONNX Runtime and TF Lite (`--runtime onnxruntime|tflite`) need
# a -gnu or -android build on the device; odai's engine, candle and the endpoint runtime work.
#
# Toolchains, all from Debian and rustup (the script installs them as root): the Rust musl
# targets (their self-contained crt objects and libc.a link with Debian's cross gcc), gcc for
# aarch64, musl-gcc for x86-64. armv7-unknown-linux-musleabihf's standard library is not on the
# rustup mirror this project can reach, so it is built from source with the nightly toolchain's
# rust-src (-Zbuild-std) and linked against Debian's musl-dev:armhf, fetched with apt-get
# download into a cache (the machine's own packages are not changed beyond adding the armhf
# architecture to apt's lists).
#
# Env: TARGETS (default: all three), PROFILE (release), ODAI_DEVICE_TARGET_DIR (cargo's target
# dir; default target/), OUT (default target/device-binaries), ODAI_TEST_CACHE (the armhf musl
# sysroot's cache, default ~/.cache/odai-test).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=${TARGETS:-aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf x86_64-unknown-linux-musl}
profile=${PROFILE:-release}
target_dir=${ODAI_DEVICE_TARGET_DIR:-$PWD/target}
out=${OUT:-$PWD/target/device-binaries}
cache=${ODAI_TEST_CACHE:-$HOME/.cache/odai-test}
mkdir -p "$out"

need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build-device-binaries.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "build-device-binaries.sh: error: needs ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
}

rust_target() {
  rustup target list --installed | grep -qx "$1" || rustup target add "$1"
}

# Debian's musl for armhf, unpacked into the cache: crt objects, libc.a and headers, and a gcc
# specs file pointing at them (musl-dev's own, with its paths moved).
armhf_musl() {
  local root=$cache/musl-armhf
  if [ ! -f "$root/usr/lib/arm-linux-musleabihf/libc.a" ]; then
    dpkg --print-foreign-architectures | grep -qx armhf || {
      dpkg --add-architecture armhf
      apt-get update -qq
    }
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq musl-dev:armhf musl:armhf 2>/dev/null)
    mkdir -p "$root"
    for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$root"; done
    rm -rf "$tmp"
  fi
  local lib=$root/usr/lib/arm-linux-musleabihf inc=$root/usr/include/arm-linux-musleabihf
  sed -e "s#/usr/lib/arm-linux-musleabihf#$lib#g" -e "s#/usr/include/arm-linux-musleabihf#$inc#g" \
    "$lib/musl-gcc.specs" >"$root/musl-gcc.specs"
  # The linker and C compiler: the armhf cross gcc against musl instead of glibc.
  printf '#!/bin/sh\nexec arm-linux-gnueabihf-gcc -specs=%s "$@"\n' "$root/musl-gcc.specs" \
    >"$root/musl-gcc"
  chmod 755 "$root/musl-gcc"
  # std on musl links -lunwind, which a build-std sysroot does not carry: gcc's own unwinder
  # (libgcc_eh, the same _Unwind_* interface, needing only dl_iterate_phdr, which musl has)
  # stands in under that name.
  mkdir -p "$root/unwind"
  ln -sf "$(arm-linux-gnueabihf-gcc -print-file-name=libgcc_eh.a)" "$root/unwind/libunwind.a"
  echo "$root/musl-gcc"
}

for t in $targets; do
  extra=()
  toolchain=()
  case $t in
    aarch64-unknown-linux-musl)
      need_packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      rust_target "$t"
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
      export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar
      ;;
    x86_64-unknown-linux-musl)
      need_packages musl-tools
      rust_target "$t"
      export CC_x86_64_unknown_linux_musl=musl-gcc
      ;;
    armv7-unknown-linux-musleabihf)
      need_packages gcc-arm-linux-gnueabihf
      rustup run nightly rustc --version >/dev/null 2>&1 || {
        echo "build-device-binaries.sh: error: $t needs the nightly toolchain (-Zbuild-std)" >&2
        exit 1
      }
      rustup component list --toolchain nightly --installed | grep -q '^rust-src' \
        || rustup component add rust-src --toolchain nightly
      cc=$(armhf_musl)
      export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=$cc
      # Static, with the crt objects musl-dev supplies (build-std has no self-contained ones).
      export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="-C target-feature=+crt-static -C link-self-contained=no -C link-arg=-static -L native=$(dirname "$cc")/unwind"
      export CC_armv7_unknown_linux_musleabihf=$cc AR_armv7_unknown_linux_musleabihf=arm-linux-gnueabihf-ar
      toolchain=(+nightly)
      extra=(-Zbuild-std=std,panic_abort)
      ;;
    *)
      echo "build-device-binaries.sh: error: unknown target $t" >&2
      exit 2
      ;;
  esac
  echo "build-device-binaries.sh: $t ($profile)" >&2
  # Without the results database (feature `db`): a device runs workers, the database lives with
  # the coordinator, and SQLite's C would need the device's libc headers.
  cargo "${toolchain[@]}" build --locked --profile "$profile" --target "$t" --target-dir "$target_dir" \
    "${extra[@]}" --no-default-features --bin odai
  dir=$profile
  [ "$profile" = dev ] && dir=debug
  cp "$target_dir/$t/$dir/odai" "$out/odai-$t"
  if command -v file >/dev/null; then
    file -b "$out/odai-$t" | grep -Eq "statically linked|static-pie linked" || {
      echo "build-device-binaries.sh: error: $out/odai-$t is not statically linked: $(file -b "$out/odai-$t")" >&2
      exit 1
    }
  fi
  echo "$out/odai-$t"
done
