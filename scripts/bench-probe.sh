#!/usr/bin/env bash
# Wall time of `odai probe` on this machine, with and without GPU enumeration (loading the Vulkan
# and GL drivers is the slow part), as hyperfine measures whole commands. Release build.
#
#   scripts/bench-probe.sh [extra hyperfine args]
#
# The figures vary with the machine's load; compare runs taken on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v hyperfine >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq hyperfine >/dev/null
  else
    echo "bench-probe.sh: needs hyperfine (apt-get install hyperfine)" >&2
    exit 1
  fi
fi
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/odai
hyperfine -N --warmup 3 --runs "${RUNS:-30}" \
  -n "probe --no-gpu" "$bin probe --no-gpu --format json" \
  -n "probe (GPU enumeration)" "$bin probe --format json" \
  "$@"
