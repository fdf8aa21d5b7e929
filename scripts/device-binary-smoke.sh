#!/usr/bin/env bash
# The static aarch64 device binary (scripts/build-device-binaries.sh) run the way a phone or a
# board runs it, under Debian's qemu-user here (a static binary needs no arm64 libraries):
# --version; the probe of a captured Raspberry Pi 5 tree; the live probe; and a synthetic
# benchmark repetition through the worker protocol, the same request `odai bench` sends its
# workers (qemu-user does not follow an exec of another aarch64 binary without binfmt_misc, so
# the coordinator's own spawn is not used here; the worker measures in its own process).
# Checks outputs, not timings.
#
# Usage: scripts/device-binary-smoke.sh [BINARY]   (default target/device-binaries/odai-aarch64-unknown-linux-musl)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/device-binaries/odai-aarch64-unknown-linux-musl}
run=(qemu-aarch64 "$bin")
fail() {
  echo "device-binary-smoke.sh: FAIL: $*" >&2
  exit 1
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

file -b "$bin" | grep -q "ARM aarch64" || fail "$bin is not an aarch64 binary: $(file -b "$bin")"

v=$("${run[@]}" --version | head -1)
[ "$v" = "odai $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" ] || fail "--version said $v"

probe=$("${run[@]}" probe --root tests/fixtures/raspberry-pi-5 --format json)
[ "$(json "d['cpu']['logical_cores']" <<<"$probe")" = 4 ] || fail "Pi 5 tree: logical_cores"
[ "$(json "d['cpu']['isa']" <<<"$probe")" = arm ] || fail "Pi 5 tree: isa"
[ "$(json "d['cpu']['simd']['neon']" <<<"$probe")" = True ] || fail "Pi 5 tree: neon"

live=$("${run[@]}" probe --format json)
[ "$(json "d['captured']" <<<"$live")" = False ] || fail "live probe: captured"
[ "$(json "d['memory']['total_bytes'] > 0" <<<"$live")" = True ] || fail "live probe: memory"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${run[@]}" model synth --preset toy --quant q4_0 --output "$tmp/toy.gguf" >/dev/null
protocol=$(sed -n 's/^pub const PROTOCOL_VERSION: u32 = \([0-9]*\);/\1/p' src/protocol.rs)
req=$(printf '{"request":"rep","protocol":%s,"model":"%s","prompt_tokens":8,"gen_tokens":4,"seed":42,"cold":false,"token_deadline_ms":null}' \
  "$protocol" "$tmp/toy.gguf")
answer=$("${run[@]}" worker <<<"$req")
hello=$(sed -n 1p <<<"$answer")
result=$(grep '"event":"result"' <<<"$answer" | tail -1)
[ "$(json "d['protocol']" <<<"$hello")" = "$protocol" ] || fail "worker hello: $hello"
[ -n "$result" ] || fail "worker gave no result: $answer"
[ "$(json "d['decode_tps'] > 0 and d['prefill_tps'] > 0" <<<"$result")" = True ] || fail "rep: $result"
[ "$(json "d['peak_rss_bytes'] > 0" <<<"$result")" = True ] || fail "rep peak memory: $result"
[ "$(json "'neon' in d['simd']" <<<"$result")" = True ] || fail "rep did not run NEON kernels: $result"
echo "device-binary-smoke.sh: ok: $bin ($(du -h "$bin" | cut -f1)): --version, probe --root raspberry-pi-5, live probe, a synthetic repetition" \
  "(decode $(json "round(d['decode_tps'], 1)" <<<"$result") tok/s under qemu)" >&2
