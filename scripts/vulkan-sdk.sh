#!/usr/bin/env bash
# Prepares what llama.cpp's Vulkan backend builds against (the feature `llama-cpp-vulkan`) and
# prints a directory to export as VULKAN_SDK:
#
#   export VULKAN_SDK=$(scripts/vulkan-sdk.sh)
#   cargo build --release --features llama-cpp-vulkan
#
# ggml-vulkan needs Vulkan-Headers 1.3.261 or newer (VK_EXT_layer_settings in vulkan.hpp), plus
# SPIRV-Headers and glslc. Debian 13 (trixie) packages all of them: there this script only checks
# and prints nothing to export (the system paths are found). Debian 12 (bookworm) packages glslc
# (2023.2) but headers 1.3.239: the script then takes trixie's libvulkan-dev and spirv-headers
# packages (headers and CMake files only; pinned by SHA-256) from Debian's own archive into a
# cache outside the clone, beside bookworm's Vulkan loader (libvulkan1, which is all a built
# binary needs at run time) and glslc. Nothing is installed into the system by it but the
# packaged glslc, libvulkan-dev and spirv-headers (as root, with apt-get).
#
# ODAI_TEST_CACHE moves the cache (default ~/.cache/odai-test).
set -euo pipefail
cache=${ODAI_TEST_CACHE:-$HOME/.cache/odai-test}
version=1.4.309.0-1
sdk=$cache/vulkan-sdk-$version

need=(glslc libvulkan-dev spirv-headers)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "vulkan-sdk.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "vulkan-sdk.sh: needs ${missing[*]} (run as root, or install them: apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

# The system's headers are new enough when vulkan.hpp declares the layer settings ggml-vulkan uses.
if grep -q 'LayerSettingEXT' /usr/include/vulkan/vulkan_structs.hpp 2>/dev/null; then
  exit 0
fi
if [ -f "$sdk/include/vulkan/vulkan.hpp" ]; then
  echo "$sdk"
  exit 0
fi

arch=$(dpkg --print-architecture)
declare -A sha256=(
  [libvulkan-dev_${version}_amd64.deb]=8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a
  [spirv-headers_1.6.1+${version}_all.deb]=dc18db866d63680351c40ac6b6bece34cb52da64a7799ce1cc4f16f6bff4d064
)
mkdir -p "$cache"
work=$(mktemp -d "$cache/vulkan-sdk.XXXXXX")
trap 'rm -rf "$work"' EXIT
# A private apt configuration naming trixie: the system's sources and state are not touched.
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  >"$work/sources.list"
apt=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
  -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update -qq >&2
(cd "$work/debs" && apt-get "${apt[@]}" download -qq "libvulkan-dev=$version" "spirv-headers=1.6.1+$version" >&2)
for deb in "$work"/debs/*.deb; do
  name=$(basename "$deb")
  want=${sha256[$name]:-}
  got=$(sha256sum "$deb" | cut -d' ' -f1)
  # apt already verified each file against trixie's signed Release; the pins keep the build
  # from moving when trixie's packages do. A package without a pin here is reported.
  if [ -n "$want" ] && [ "$got" != "$want" ]; then
    echo "vulkan-sdk.sh: $name has SHA-256 $got, expected $want" >&2
    exit 1
  fi
  [ -n "$want" ] || echo "vulkan-sdk.sh: $name (SHA-256 $got) is not pinned here; apt checked it against trixie's signed index" >&2
  dpkg-deb -x "$deb" "$work/root"
done
mkdir -p "$sdk.part/lib" "$sdk.part/bin" "$sdk.part/share"
cp -r "$work/root/usr/include" "$sdk.part/include"
cp -r "$work/root/usr/share/cmake" "$sdk.part/share/cmake"
# Link against the system's loader (bookworm's libvulkan1): the binary runs where that is.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
ln -s "/usr/lib/$multiarch/libvulkan.so.1" "$sdk.part/lib/libvulkan.so"
ln -s "$(command -v glslc)" "$sdk.part/bin/glslc"
rm -rf "$sdk"
mv "$sdk.part" "$sdk"
echo "vulkan-sdk.sh: Vulkan headers $version in $sdk (arch $arch)" >&2
echo "$sdk"
